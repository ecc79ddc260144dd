from maild.cli import main

# Guarded, like any main module: a process started with spawn (the parser process) may
# import the main module of the process that started it.
if __name__ == "__main__":
    main()
