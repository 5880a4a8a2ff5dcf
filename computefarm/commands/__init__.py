"""The command line programs, one module each; ``common`` holds what they share."""
