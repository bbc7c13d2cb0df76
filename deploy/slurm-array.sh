#!/usr/bin/env bash
# Translate a folder of Arabic articles as a Slurm job array: task K of N takes shard K/N.
#
#   sbatch deploy/slurm-array.sh /shared/articles /shared/english
#
# The tasks share one output folder (on a shared file system); each writes its own
# manifest (.tarjama-manifest.K-of-N.jsonl) and cache, so they merge, and `sbatch` again
# (or one run without --shard) redoes only what did not finish. Each task runs the model
# on its own cores; set TARJAMA_ENDPOINT (and --model to the server's name) to use a
# shared server instead.
#SBATCH --job-name=tarjama
#SBATCH --array=1-16
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=tarjama-%A_%a.log
set -euo pipefail
input="${1:?usage: slurm-array.sh INPUT_FOLDER OUTPUT_FOLDER}"
output="${2:?usage: slurm-array.sh INPUT_FOLDER OUTPUT_FOLDER}"
tasks="${SLURM_ARRAY_TASK_COUNT:-16}"

exec tarjama translate "$input" -o "$output" \
  --shard "${SLURM_ARRAY_TASK_ID}/${tasks}" \
  --threads "${SLURM_CPUS_PER_TASK:-4}" \
  --json
