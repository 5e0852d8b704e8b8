// Small SVG charts (no plotting library on the cluster): a line chart of training curves, one
// panel per series (e.g. FVU, L0, dead and dense fractions) against the step, written
// atomically; and a histogram as an inline <svg> element for the interpret stage's pages.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace saepipe {

// Reads train_log.jsonl records and plots `keys` against "step" into svg_path.
void write_training_plot(const std::string& log_path, const std::string& svg_path,
                         const std::vector<std::string>& keys = {"fvu", "l0", "dead_fraction", "dense_fraction"});

struct HistogramStyle {
  std::string title, x_label;        // plain text (escaped here)
  double width = 420, height = 180;  // pixels
  bool log_y = false;                // bar height log10(1 + count)
  // Bars whose centre lies below split_at are drawn in the second colour (logit effects:
  // negative red, positive blue); NaN draws every bar in the first.
  double split_at = std::numeric_limits<double>::quiet_NaN();
  std::string color = "#4c78a8", color_below = "#e45756";
};

// An inline <svg> of B bars: edges [B + 1] increasing, counts [B]. Each bar carries a <title>
// with its range and count (shown on hover). Empty or mismatched input gives an SVG saying
// "no data".
std::string svg_histogram(const std::vector<double>& edges, const std::vector<double>& counts,
                          const HistogramStyle& style);

}  // namespace saepipe
