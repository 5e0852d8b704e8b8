// interpret: a static index.html that opens from disk with no network: the summary and a
// table of features (density, max and mean activation, and for synthetic stores the best
// matching true feature and its cosine), sortable and searchable by inline script. The
// page is written by rank 0; the data is small (one row per latent).
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/log.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/stats_file.hpp"
#include "pipeline/stages/stages.hpp"

namespace saepipe {

namespace {

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string fmt(double v, const char* f = "%.4g") {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The rows as a JSON array embedded in the page (the script renders and sorts them).
nlohmann::json feature_rows(const FeatureStats& fs, int64_t limit) {
  nlohmann::json rows = nlohmann::json::array();
  const bool gt = !fs.gt_match_index.empty();
  for (int64_t f = 0; f < fs.d_sae && (limit == 0 || f < limit); ++f) {
    nlohmann::json r = {f, fs.density[f], fs.max_activation[f], fs.mean_activation[f], fs.fire_count[f]};
    if (gt) {
      r.push_back(fs.gt_match_index[f]);
      r.push_back(fs.gt_match_cosine[f]);
    }
    rows.push_back(r);
  }
  return rows;
}

std::string render_index(const nlohmann::json& summary, const FeatureStats& fs, int64_t limit) {
  const bool gt = !fs.gt_match_index.empty();
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    << "<title>saepipe features: " << html_escape(summary.value("hook", "")) << "</title>\n"
    << "<style>body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
       "table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}"
       "th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}th:hover{background:#e8e8ff}"
       ".dead{color:#b00}.bar{display:inline-block;height:8px;background:#69c;vertical-align:middle}"
       "#summary td{text-align:left}</style></head><body>\n"
    << "<h1>SAE features</h1>\n<table id=\"summary\">\n";
  auto row = [&](const std::string& k, const std::string& v) {
    h << "<tr><td>" << html_escape(k) << "</td><td>" << html_escape(v) << "</td></tr>\n";
  };
  row("SAE", summary.value("sae", ""));
  row("hook", summary.value("hook", ""));
  row("held-out tokens", std::to_string(summary.value("n_tokens", 0)));
  row("d_in / d_sae / k", std::to_string(summary.value("d_in", 0)) + " / " + std::to_string(summary.value("d_sae", 0)) +
                              " / " + std::to_string(summary.value("k", 0)));
  row("FVU (explained variance)", fmt(summary.value("fvu", 0.0)) + " (" + fmt(summary.value("explained_variance", 0.0)) + ")");
  row("MSE", fmt(summary.value("mse", 0.0)));
  row("L0", fmt(summary.value("l0", 0.0)));
  row("mean cosine(x, x̂)", fmt(summary.value("cosine", 0.0)));
  row("dead fraction", fmt(summary.value("dead_fraction", 0.0)));
  if (summary.contains("mmcs")) {
    row("MMCS vs ground truth", fmt(summary["mmcs"].get<double>()));
    row("true features recovered (cos ≥ 0.9 / 0.99)",
        fmt(summary["frac_recovered_09"].get<double>()) + " / " + fmt(summary["frac_recovered_099"].get<double>()));
  }
  h << "</table>\n<p><label>Search feature or true-feature id: <input id=\"q\" size=\"10\"></label> "
    << "<span id=\"count\"></span> &middot; click a column to sort</p>\n"
    << "<table id=\"features\"><thead><tr><th data-c=\"0\">feature</th><th data-c=\"1\">density</th>"
    << "<th data-c=\"2\">max act</th><th data-c=\"3\">mean act</th><th data-c=\"4\">fires</th>";
  if (gt) h << "<th data-c=\"5\">true feature</th><th data-c=\"6\">cosine</th>";
  h << "</tr></thead><tbody></tbody></table>\n"
    << "<script>\nconst ROWS = " << feature_rows(fs, limit).dump() << ";\nconst GT = " << (gt ? "true" : "false")
    << ";\n"
    << R"JS(let sortCol = 1, sortDesc = true;
function fmt(v){ return typeof v === 'number' && !Number.isInteger(v) ? v.toPrecision(4) : String(v); }
function render(){
  const q = document.getElementById('q').value.trim();
  let rows = ROWS.filter(r => q === '' || String(r[0]) === q || (GT && String(r[5]) === q));
  rows.sort((a,b) => (sortDesc ? b[sortCol]-a[sortCol] : a[sortCol]-b[sortCol]) || a[0]-b[0]);
  const maxd = Math.max(1e-12, ...ROWS.map(r => r[1]));
  const body = rows.map(r => {
    const dead = r[4] === 0 ? ' class="dead"' : '';
    let tr = `<tr id="f${r[0]}"${dead}><td>${r[0]}</td><td><span class="bar" style="width:${Math.round(60*r[1]/maxd)}px"></span> ${fmt(r[1])}</td><td>${fmt(r[2])}</td><td>${fmt(r[3])}</td><td>${r[4]}</td>`;
    if (GT) tr += `<td>${r[5]}</td><td>${fmt(r[6])}</td>`;
    return tr + '</tr>';
  }).join('');
  document.querySelector('#features tbody').innerHTML = body;
  document.getElementById('count').textContent = rows.length + ' of ' + ROWS.length + ' features';
}
document.querySelectorAll('#features th').forEach(th => th.addEventListener('click', () => {
  const c = Number(th.dataset.c); sortDesc = (c === sortCol) ? !sortDesc : true; sortCol = c; render(); }));
document.getElementById('q').addEventListener('input', render);
render();
)JS"
    << "</script>\n<noscript>This page lists the features with a script; features.h5 holds the same data.</noscript>\n"
    << "</body></html>\n";
  return h.str();
}

}  // namespace

void run_interpret(const Job& job, const MpiEnv& env) {
  Logger log(env, "interpret");
  h5::silence_errors();
  const std::string stats_dir = job.stats_dir();
  const std::string out_dir = job.interpret_dir();
  nlohmann::json summary;
  FeatureStats fs;
  env.all_or_none([&] {
    if (!path_exists(stats_dir + "/summary.json"))
      user_error(stats_dir + "/summary.json: stats not found (run the stats stage first)");
    try {
      summary = nlohmann::json::parse(read_file(stats_dir + "/summary.json"));
    } catch (const nlohmann::json::exception& e) {
      user_error(stats_dir + "/summary.json: not valid JSON: " + e.what());
    }
    if (summary.value("schema", "") != "saepipe.stats.summary")
      user_error(stats_dir + "/summary.json: schema is not saepipe.stats.summary");
    fs = read_feature_stats(stats_dir + "/features.h5");
    make_dirs(out_dir);
    if (env.is_root()) write_resolved_job(job);
  });
  if (env.is_root()) {
    write_file_atomic(out_dir + "/index.html", render_index(summary, fs, job.interpret.max_features));
  }
  env.barrier();
  log.info("wrote " + out_dir + "/index.html (" + std::to_string(fs.d_sae) + " features)");
}

}  // namespace saepipe
