"""Ray Train entry point of stage `upscaler`: `python jobs/train_upscaler.py --config FILE --data PATH...`,
also as `ray job submit --working-dir . -- python jobs/train_upscaler.py ...` (options as `satecco train upscaler`)."""

import sys

from satecco.jobs.train import main

if __name__ == "__main__":
    sys.exit(main("upscaler", sys.argv[1:]))
