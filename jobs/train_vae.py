"""Ray Train entry point of stage `vae`: `python jobs/train_vae.py --config FILE --data PATH...`,
also as `ray job submit --working-dir . -- python jobs/train_vae.py ...` (options as `satecco train vae`)."""

import sys

from satecco.jobs.train import main

if __name__ == "__main__":
    sys.exit(main("vae", sys.argv[1:]))
