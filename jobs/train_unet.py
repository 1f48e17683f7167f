"""Ray Train entry point of stage `unet`: `python jobs/train_unet.py --config FILE --data PATH...`,
also as `ray job submit --working-dir . -- python jobs/train_unet.py ...` (options as `satecco train unet`)."""

import sys

from satecco.jobs.train import main

if __name__ == "__main__":
    sys.exit(main("unet", sys.argv[1:]))
