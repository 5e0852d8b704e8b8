#!/usr/bin/env bash
# Bad job files and missing inputs, through every stage program under 4 ranks: exit 2,
# one line naming the file and key, no hang. Also through the driver.
source "$(dirname "$(dirname "$0")")/e2e/lib.sh" "$1"
cat > unknown.toml <<'T'
[run]
name = "x"
[train]
d_sea = 3
T
cat > type.toml <<'T'
[run]
name = "x"
[train]
k = "eight"
T
cat > range.toml <<'T'
[run]
name = "x"
[harvest.synthetic]
decay = 2.0
T
cat > path.toml <<'T'
[run]
name = "x"
[stats]
sae = "/no/such/sae.h5"
T
cat > nostore.toml <<'T'
[run]
name = "x"
dir = "empty_run"
T
for stage in harvest train stats interpret; do
  expect_error 2 "unknown.toml:4: train.d_sea: unknown key" -- mpirun_np 4 "$BIN/saepipe-$stage" --job unknown.toml
done
expect_error 2 "type.toml:4: train.k: expected an integer" -- mpirun_np 4 "$BIN/saepipe-train" --job type.toml
expect_error 2 "range.toml:4: harvest.synthetic.decay: must be <= 1" -- mpirun_np 4 "$BIN/saepipe-harvest" --job range.toml
expect_error 2 "stats.sae: SAE checkpoint \"/no/such/sae.h5\" does not exist" -- mpirun_np 4 "$BIN/saepipe-stats" --job path.toml
expect_error 2 "missing.toml: job file not found" -- mpirun_np 4 "$BIN/saepipe-train" --job missing.toml
expect_error 2 "empty_run/activations/manifest.json: no activation store here" -- mpirun_np 4 "$BIN/saepipe-train" --job nostore.toml
expect_error 2 "SAE checkpoint not found" -- mpirun_np 4 "$BIN/saepipe-stats" --job nostore.toml
expect_error 2 "stats not found" -- mpirun_np 4 "$BIN/saepipe-interpret" --job nostore.toml
expect_error 2 "unknown.toml:4: train.d_sea: unknown key" -- "$BIN/saepipe" run unknown.toml --ranks 4
expect_error 2 "unknown.toml:4: train.d_sea: unknown key" -- "$BIN/saepipe" validate unknown.toml
expect_error 2 "unknown stage" -- "$BIN/saepipe" run nostore.toml --only harvest,trian
# A failing stage stops the chain with its code.
expect_error 2 "empty_run/activations/manifest.json: no activation store here" -- "$BIN/saepipe" run nostore.toml --only train,stats --ranks 2
finish
