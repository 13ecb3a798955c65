from boxoffice.entrypoints.cli import main

main()
