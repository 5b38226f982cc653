from linkcert.cli import main

main()
