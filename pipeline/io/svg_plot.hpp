// A small SVG line chart of training curves (no plotting library on the cluster): one panel
// per series (e.g. FVU, L0, dead fraction) against the step, written atomically.
#pragma once
#include <string>
#include <vector>

namespace saepipe {

// Reads train_log.jsonl records and plots `keys` against "step" into svg_path.
void write_training_plot(const std::string& log_path, const std::string& svg_path,
                         const std::vector<std::string>& keys = {"fvu", "l0", "dead_fraction"});

}  // namespace saepipe
