"""Run the heart-sr-tf command line from a checkout: ``python cli.py --help``."""

from heart_sr_tf.cli import main

if __name__ == "__main__":
    main()
