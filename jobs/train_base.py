"""Ray Train entry point of stage `base`: `python jobs/train_base.py --config FILE --data PATH...`,
also as `ray job submit --working-dir . -- python jobs/train_base.py ...` (options as `satecco train base`)."""

import sys

from satecco.jobs.train import main

if __name__ == "__main__":
    sys.exit(main("base", sys.argv[1:]))
