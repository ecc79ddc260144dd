"""Internet mail formats shared by the intake and outbound: addresses, headers, policies."""
