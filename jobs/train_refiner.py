"""Ray Train entry point of stage `refiner`: `python jobs/train_refiner.py --config FILE --data PATH...`,
also as `ray job submit --working-dir . -- python jobs/train_refiner.py ...` (options as `satecco train refiner`)."""

import sys

from satecco.jobs.train import main

if __name__ == "__main__":
    sys.exit(main("refiner", sys.argv[1:]))
