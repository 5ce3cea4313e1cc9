from codi_eval.cli import main

main()
