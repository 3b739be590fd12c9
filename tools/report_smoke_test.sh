#!/usr/bin/env bash
# Runs //tools:report on the smoke preset and checks that it wrote what it promises. Asserts no time.
set -euo pipefail
out="${TEST_TMPDIR}/report"
"${TEST_SRCDIR}/lorafa/tools/report" --out="${out}" --preset=smoke
for file in report.md results.json step_time_vs_rank.png speedup_vs_peft.png memory_breakdown.png; do
  [ -s "${out}/${file}" ] || { echo "FAIL: report did not write ${file}"; exit 1; }
done
grep -q "## Verdicts" "${out}/report.md" || { echo "FAIL: report.md has no verdicts"; exit 1; }
grep -q "PEFT LoraFAOptimizer" "${out}/report.md" || { echo "FAIL: report.md has no PEFT column"; exit 1; }
grep -q "## From Python" "${out}/report.md" || { echo "FAIL: report.md has no Python rows"; exit 1; }
echo "report wrote: $(ls "${out}" | tr '\n' ' ')"
