from maild.cli import main

main()
