from latentds.cli import main

main(prog_name="latentds")
