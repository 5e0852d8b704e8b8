#include "pipeline/io/svg_plot.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "pipeline/core/fs_util.hpp"

namespace saepipe {

namespace {
std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}
}  // namespace

void write_training_plot(const std::string& log_path, const std::string& svg_path,
                         const std::vector<std::string>& keys) {
  std::vector<double> steps;
  std::vector<std::vector<double>> ys(keys.size());
  std::ifstream in(log_path);
  std::string line;
  while (std::getline(in, line)) {
    auto rec = nlohmann::json::parse(line, nullptr, false);
    if (rec.is_discarded() || !rec.contains("step")) continue;
    steps.push_back(rec["step"].get<double>());
    for (size_t k = 0; k < keys.size(); ++k) ys[k].push_back(rec.value(keys[k], 0.0));
  }
  const double W = 360, H = 220, pad = 45;
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W * double(keys.size())) +
                    "\" height=\"" + num(H) + "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  for (size_t k = 0; k < keys.size(); ++k) {
    const double x0 = W * double(k) + pad, x1 = W * double(k + 1) - 10, y0 = H - 30, y1 = 25;
    double smin = steps.empty() ? 0 : steps.front(), smax = steps.empty() ? 1 : steps.back();
    double vmin = 0, vmax = 0;
    if (!ys[k].empty()) {
      vmin = *std::min_element(ys[k].begin(), ys[k].end());
      vmax = *std::max_element(ys[k].begin(), ys[k].end());
    }
    vmin = std::min(vmin, 0.0);
    if (vmax <= vmin) vmax = vmin + 1;
    if (smax <= smin) smax = smin + 1;
    svg += "<text x=\"" + num(x0) + "\" y=\"15\" font-weight=\"bold\">" + keys[k] + "</text>\n";
    svg += "<rect x=\"" + num(x0) + "\" y=\"" + num(y1) + "\" width=\"" + num(x1 - x0) + "\" height=\"" +
           num(y0 - y1) + "\" fill=\"none\" stroke=\"#888\"/>\n";
    svg += "<text x=\"" + num(x0 - 4) + "\" y=\"" + num(y1 + 4) + "\" text-anchor=\"end\">" + num(vmax) + "</text>\n";
    svg += "<text x=\"" + num(x0 - 4) + "\" y=\"" + num(y0) + "\" text-anchor=\"end\">" + num(vmin) + "</text>\n";
    svg += "<text x=\"" + num(x0) + "\" y=\"" + num(y0 + 14) + "\">" + num(smin) + "</text>\n";
    svg += "<text x=\"" + num(x1) + "\" y=\"" + num(y0 + 14) + "\" text-anchor=\"end\">step " + num(smax) + "</text>\n";
    svg += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"";
    for (size_t i = 0; i < steps.size(); ++i) {
      const double px = x0 + (steps[i] - smin) / (smax - smin) * (x1 - x0);
      const double py = y0 - (ys[k][i] - vmin) / (vmax - vmin) * (y0 - y1);
      svg += num(px) + "," + num(py) + " ";
    }
    svg += "\"/>\n";
  }
  svg += "</svg>\n";
  write_file_atomic(svg_path, svg);
}

}  // namespace saepipe
