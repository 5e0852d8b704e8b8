#include "pipeline/io/svg_plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "pipeline/core/fs_util.hpp"
#include "pipeline/io/markup_escape.hpp"

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

std::string svg_histogram(const std::vector<double>& edges, const std::vector<double>& counts,
                          const HistogramStyle& st) {
  const double W = st.width, H = st.height, left = 46, right = 8, top = st.title.empty() ? 8 : 22, bottom = 32;
  std::string svg = "<svg class=\"hist\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W) + "\" height=\"" +
                    num(H) + "\" viewBox=\"0 0 " + num(W) + " " + num(H) +
                    "\" font-family=\"sans-serif\" font-size=\"10\">";
  if (!st.title.empty())
    svg += "<text x=\"" + num(left) + "\" y=\"13\" font-weight=\"bold\" font-size=\"11\">" + html_escape(st.title) +
           "</text>";
  const size_t B = counts.size();
  bool ok = B > 0 && edges.size() == B + 1 && edges.back() > edges.front();
  for (size_t b = 0; ok && b < B; ++b) ok = std::isfinite(counts[b]) && counts[b] >= 0 && edges[b + 1] >= edges[b];
  if (!ok) return svg + "<text x=\"" + num(W / 2) + "\" y=\"" + num(H / 2) + "\" text-anchor=\"middle\">no data</text></svg>";

  auto height_of = [&](double c) { return st.log_y ? std::log10(1.0 + c) : c; };
  double ymax = 0;
  for (double c : counts) ymax = std::max(ymax, height_of(c));
  if (ymax <= 0) ymax = 1;
  const double x0 = left, x1 = W - right, y0 = H - bottom, y1 = top;
  const double lo = edges.front(), hi = edges.back();
  auto px = [&](double v) { return x0 + (v - lo) / (hi - lo) * (x1 - x0); };
  for (size_t b = 0; b < B; ++b) {
    const double h = height_of(counts[b]) / ymax * (y0 - y1);
    const double centre = 0.5 * (edges[b] + edges[b + 1]);
    const bool below = !std::isnan(st.split_at) && centre < st.split_at;
    const double bx = px(edges[b]), bw = std::max(0.5, px(edges[b + 1]) - px(edges[b]) - 0.5);
    svg += "<rect x=\"" + num(bx) + "\" y=\"" + num(y0 - h) + "\" width=\"" + num(bw) + "\" height=\"" + num(h) +
           "\" fill=\"" + (below ? st.color_below : st.color) + "\"><title>[" + num(edges[b]) + ", " +
           num(edges[b + 1]) + "): " + num(counts[b]) + "</title></rect>";
  }
  // Axes: the baseline, the range of x, the largest count.
  svg += "<line x1=\"" + num(x0) + "\" y1=\"" + num(y0) + "\" x2=\"" + num(x1) + "\" y2=\"" + num(y0) +
         "\" stroke=\"#666\"/>";
  svg += "<text x=\"" + num(x0) + "\" y=\"" + num(y0 + 12) + "\">" + num(lo) + "</text>";
  svg += "<text x=\"" + num(x1) + "\" y=\"" + num(y0 + 12) + "\" text-anchor=\"end\">" + num(hi) + "</text>";
  if (!st.x_label.empty())
    svg += "<text x=\"" + num((x0 + x1) / 2) + "\" y=\"" + num(y0 + 26) + "\" text-anchor=\"middle\">" +
           html_escape(st.x_label) + "</text>";
  double cmax = 0;
  for (double c : counts) cmax = std::max(cmax, c);
  svg += "<text x=\"" + num(x0 - 4) + "\" y=\"" + num(y1 + 8) + "\" text-anchor=\"end\">" + num(cmax) + "</text>";
  svg += "<text x=\"" + num(x0 - 4) + "\" y=\"" + num(y0) + "\" text-anchor=\"end\">0</text>";
  if (st.log_y)
    svg += "<text x=\"" + num(x0 - 4) + "\" y=\"" + num((y0 + y1) / 2) + "\" text-anchor=\"end\">log</text>";
  return svg + "</svg>";
}

}  // namespace saepipe
