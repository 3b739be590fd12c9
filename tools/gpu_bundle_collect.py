"""Gathers what the GPU bundle's run.sh produced into OUTDIR as at most 8 plain files: report.md (the
step summary, then each report), results.json (the summary, each report's results, the parity runs),
the charts (a later report's renamed with its preset) and run.log, which run.sh already writes there."""

import argparse
import json
import os
import shutil

MAX_FILES = 8


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", required=True, help="run.sh's scratch folder")
    parser.add_argument("--out", required=True)
    parser.add_argument("--reports", default="", help="presets whose report was written, in order")
    parser.add_argument("--summary", default="", help="one line per step")
    args = parser.parse_args()

    summary = [line for line in args.summary.splitlines() if line]
    markdown = ["# lorafa GPU bundle run\n", "| step | outcome |", "|---|---|"]
    markdown += [f"| {line.split(': ', 1)[0]} | {line.split(': ', 1)[-1]} |" for line in summary]
    markdown.append("")
    results = {"summary": summary, "reports": {}, "parity": {}}

    for index, preset in enumerate(args.reports.split()):
        folder = os.path.join(args.work, preset)
        with open(os.path.join(folder, "report.md")) as f:
            text = f.read()
        for chart in sorted(name for name in os.listdir(folder) if name.endswith(".png")):
            # The first report keeps its chart names; later ones get their preset added.
            renamed = chart if index == 0 else chart.replace(".png", f"_{preset}.png")
            shutil.copyfile(os.path.join(folder, chart), os.path.join(args.out, renamed))
            text = text.replace(f"({chart})", f"({renamed})")
        markdown.append(text)
        with open(os.path.join(folder, "results.json")) as f:
            results["reports"][preset] = json.load(f)
    for device in ("cpu", "cuda"):
        path = os.path.join(args.work, f"parity_{device}.json")
        if os.path.exists(path):
            with open(path) as f:
                results["parity"][device] = json.load(f)

    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(markdown))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    files = sorted(os.listdir(args.out))
    print(f"run.sh: wrote {len(files)} files to {args.out}: {', '.join(files)}")
    if len(files) > MAX_FILES:
        raise SystemExit(f"run.sh: {len(files)} files in {args.out}; at most {MAX_FILES} may come back")


if __name__ == "__main__":
    main()
