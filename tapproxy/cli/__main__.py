from tapproxy.cli import main

main()
