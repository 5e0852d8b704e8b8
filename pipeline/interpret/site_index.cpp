#include "pipeline/interpret/site_index.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "pipeline/interpret/html_text.hpp"
#include "pipeline/interpret/site_style.hpp"
#include "pipeline/io/svg_plot.hpp"

namespace saepipe {

namespace {

std::string json_num(double v) { return std::isfinite(v) ? fmt_num(v, 6) : "null"; }

// The top example's token of latent f (its text), or "".
std::string top_token(const SiteData& site, int64_t f) {
  if (!site.has_examples || site.examples.top.per_feature == 0) return "";
  const ExampleSet& t = site.examples.top;
  const auto slot = size_t(f * t.per_feature);
  if (t.row[slot] < 0) return "";
  const int64_t C = site.examples.context();
  return site.tokens.display(t.ctx_tokens[slot * size_t(C) + size_t(site.examples.context_before)]);
}

// Summary fields in display order: key, label. Others that are present follow under their key.
const std::vector<std::pair<const char*, const char*>>& known_fields() {
  static const std::vector<std::pair<const char*, const char*>> k = {
      {"sae", "SAE"},
      {"hook", "hook"},
      {"architecture", "architecture"},
      {"store", "activation store"},
      {"n_tokens", "held-out tokens"},
      {"d_in", "d_in"},
      {"d_sae", "d_sae"},
      {"k", "k"},
      {"fvu", "FVU"},
      {"explained_variance", "explained variance"},
      {"mse", "MSE"},
      {"l0", "L0"},
      {"cosine", "mean cosine(x, x̂)"},
      {"dead_fraction", "dead fraction"},
      {"dense_fraction", "dense fraction"},
      {"ultralow_fraction", "ultra-low density fraction"},
      {"ce_loss_clean", "CE loss, clean"},
      {"ce_loss_spliced", "CE loss, SAE spliced in"},
      {"ce_loss_zero", "CE loss, zero ablation"},
      {"ce_loss_recovered", "CE loss recovered"},
      {"delta_loss", "Δ LM loss (spliced − clean)"},
      {"kl_div", "KL divergence (clean ‖ spliced)"},
      {"ce_tokens", "tokens in the CE figures"},
      {"n_true_features", "true features"},
      {"mmcs", "MMCS vs ground truth"},
      {"frac_recovered_09", "true features recovered (cos ≥ 0.9)"},
      {"frac_recovered_099", "true features recovered (cos ≥ 0.99)"},
  };
  return k;
}

std::string value_text(const nlohmann::json& v) {
  if (v.is_number_float()) return fmt_num(v.get<double>(), 6);
  if (v.is_number()) return v.dump();
  if (v.is_string()) return make_valid_utf8(v.get<std::string>());
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_array() && v.size() <= 32) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + value_text(v[i]);
    return s + "]";
  }
  std::string d = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return d.size() > 200 ? d.substr(0, 200) + "…" : d;
}

void summary_table(std::ostringstream& h, const nlohmann::json& summary) {
  static const std::set<std::string> skip = {"schema", "version", "resolved_job", "fingerprint", "first_token"};
  std::set<std::string> shown;
  h << "<table class=\"kv\" id=\"summary\">\n";
  auto row = [&](const std::string& key, const std::string& label, const nlohmann::json& v) {
    h << "<tr data-key=\"" << html_escape(key) << "\"><th>" << html_escape(label) << "</th><td>"
      << html_escape(value_text(v)) << "</td></tr>\n";
  };
  for (const auto& [key, label] : known_fields()) {
    if (!summary.contains(key)) continue;
    shown.insert(key);
    row(key, label, summary[key]);
  }
  for (const auto& [key, v] : summary.items()) {
    if (shown.count(key) || skip.count(key) || v.is_null()) continue;
    row(key, make_valid_utf8(key), v);
  }
  h << "</table>\n";
}

void density_hist(std::ostringstream& h, const SiteData& site) {
  const FeatureStats& s = site.stats;
  std::vector<double> edges, counts;
  if (!s.density_hist_counts.empty()) {
    edges = s.density_hist_edges;
    counts.assign(s.density_hist_counts.begin(), s.density_hist_counts.end());
  } else {  // an older stats file: bins of 0.25 decades over the live latents
    double lo = 0;
    for (int64_t f = 0; f < s.d_sae; ++f)
      if (!s.dead[size_t(f)]) lo = std::min(lo, s.log10_density[size_t(f)]);
    lo = std::floor(lo * 4) / 4 - 0.25;
    const int64_t B = std::max<int64_t>(1, int64_t(std::lround(-lo * 4)));
    for (int64_t b = 0; b <= B; ++b) edges.push_back(lo + 0.25 * double(b));
    counts.assign(size_t(B), 0);
    for (int64_t f = 0; f < s.d_sae; ++f) {
      if (s.dead[size_t(f)]) continue;
      const auto b = std::clamp<int64_t>(int64_t(std::floor((s.log10_density[size_t(f)] - lo) * 4)), 0, B - 1);
      counts[size_t(b)] += 1;
    }
  }
  int64_t dead = 0;
  for (uint8_t d : s.dead) dead += d;
  HistogramStyle st;
  st.title = "log10 density of the live latents";
  st.x_label = "log10(fraction of tokens on which the latent fires)";
  st.width = 520;
  h << "<div id=\"density_hist\">" << svg_histogram(edges, counts, st) << "<p class=\"note\">" << dead
    << " dead latents (never fired) not shown";
  if (site.has_flags())
    h << "; dense: density &gt; " << fmt_num(s.dense_threshold) << ", ultra-low: density &lt; "
      << fmt_num(s.ultralow_threshold);
  h << "</p></div>\n";
}

void gt_cosine_hist(std::ostringstream& h, const SiteData& site) {
  const FeatureStats& s = site.stats;
  const int B = 40;
  std::vector<double> edges(B + 1), counts(B, 0);
  for (int b = 0; b <= B; ++b) edges[size_t(b)] = double(b) / B;
  for (float c : s.gt_match_cosine)
    if (std::isfinite(c)) counts[size_t(std::clamp(int(std::floor(double(c) * B)), 0, B - 1))] += 1;
  HistogramStyle st;
  st.title = "cosine of each latent to its best true feature";
  st.x_label = "decoder cosine";
  st.width = 420;
  h << "<div id=\"gt_hist\">" << svg_histogram(edges, counts, st) << "</div>\n";
}

const char* kScript = R"JS(
const COLS = [
  {k:'feature', i:0, label:'feature', int:true},
  {k:'density', i:1, label:'density'},
  {k:'max', i:2, label:'max act'},
  {k:'mean', i:3, label:'mean act'},
  {k:'fires', i:4, label:'fires', int:true},
  {k:'flags', i:5, label:'flags', flags:true},
].concat(DATA.top ? [{k:'top', i:8, label:'top token', str:true}] : [])
 .concat(DATA.gt ? [{k:'gt', i:6, label:'true feature', int:true}, {k:'gtcos', i:7, label:'cosine'}] : []);
const ROWS = DATA.rows;
const FLAG_NAMES = [[1, 'dead'], [2, 'dense'], [4, 'ultra-low']];
const state = {sort:'density', dir:'desc', q:'', filter:'all', page:1, per:100};
function readState() {
  const p = new URLSearchParams(location.search);
  new URLSearchParams(location.hash.replace(/^#/, '')).forEach((v, k) => p.set(k, v));
  if (p.has('sort') && COLS.some(c => c.k === p.get('sort'))) state.sort = p.get('sort');
  if (p.has('dir')) state.dir = p.get('dir') === 'asc' ? 'asc' : 'desc';
  else if (p.has('sort')) state.dir = state.sort === 'feature' ? 'asc' : 'desc';
  if (p.has('q')) state.q = p.get('q');
  if (p.has('filter')) state.filter = p.get('filter');
  if (p.has('per')) state.per = Math.max(0, parseInt(p.get('per'), 10) || 0);
  if (p.has('page')) state.page = Math.max(1, parseInt(p.get('page'), 10) || 1);
}
function writeState() {
  const h = `sort=${state.sort}&dir=${state.dir}&filter=${state.filter}&page=${state.page}&per=${state.per}` +
            (state.q ? `&q=${encodeURIComponent(state.q)}` : '');
  history.replaceState(null, '', '#' + h);
}
function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
}
function fmt(v, c) {
  if (v === null || v === undefined) return '';
  if (c.int) return String(v);
  return Number(v).toPrecision(4);
}
function flagText(m) { return FLAG_NAMES.filter(([b]) => m & b).map(([, n]) => n).join(' '); }
let minLog = 0;
for (const r of ROWS) if (r[1] > 0) minLog = Math.min(minLog, Math.log10(r[1]));
function matches(r, q) {
  if (q === '') return true;
  if (/^\d+$/.test(q)) return String(r[0]) === q || (DATA.gt && String(r[6]) === q);
  return DATA.top && r[8].toLowerCase().includes(q.toLowerCase());
}
function passesFilter(r) {
  switch (state.filter) {
    case 'live': return !(r[5] & 1);
    case 'dead': return (r[5] & 1) !== 0;
    case 'dense': return (r[5] & 2) !== 0;
    case 'ultralow': return (r[5] & 4) !== 0;
    default: return true;
  }
}
function cell(r, c) {
  const v = r[c.i];
  if (c.k === 'feature') return r[0] < DATA.pages ? `<a href="features/${r[0]}.html">${r[0]}</a>` : String(r[0]);
  if (c.k === 'density') {
    const w = r[1] > 0 && minLog < 0 ? Math.round(60 * (Math.log10(r[1]) - minLog) / -minLog) + 1 : 0;
    return `<span class="bar" style="width:${w}px"></span>${fmt(v, c)}`;
  }
  if (c.k === 'gt') return v < 0 ? '' : String(v);
  if (c.flags) return flagText(v);
  if (c.str) return esc(v);
  return fmt(v, c);
}
function render() {
  const q = state.q.trim();
  const col = COLS.find(c => c.k === state.sort) || COLS[1];
  const sign = state.dir === 'asc' ? 1 : -1;
  const rows = ROWS.filter(r => passesFilter(r) && matches(r, q));
  rows.sort((a, b) => {
    const x = a[col.i], y = b[col.i];
    const d = col.str ? String(x).localeCompare(String(y)) : ((x ?? -Infinity) - (y ?? -Infinity));
    return sign * d || a[0] - b[0];
  });
  const per = state.per > 0 ? state.per : Math.max(1, rows.length);
  const pages = Math.max(1, Math.ceil(rows.length / per));
  state.page = Math.min(state.page, pages);
  const shown = rows.slice((state.page - 1) * per, state.page * per);
  document.querySelector('#features tbody').innerHTML = shown.map(r =>
    `<tr data-f="${r[0]}"${r[5] & 1 ? ' class="dead"' : ''}>` +
    COLS.map(c => `<td class="${c.k}">${cell(r, c)}</td>`).join('') + '</tr>').join('');
  document.getElementById('count').textContent = `${rows.length} of ${ROWS.length} latents`;
  document.getElementById('pageinfo').textContent = `page ${state.page} of ${pages}`;
  document.getElementById('prev').disabled = state.page <= 1;
  document.getElementById('next').disabled = state.page >= pages;
  document.querySelectorAll('#features th').forEach(th => {
    th.className = th.dataset.k === state.sort ? 'sorted ' + state.dir : '';
  });
  writeState();
}
function init() {
  readState();
  document.querySelector('#features thead tr').innerHTML =
    COLS.map(c => `<th data-k="${c.k}" title="sort by ${c.label}">${esc(c.label)}</th>`).join('');
  document.querySelectorAll('#features th').forEach(th => th.addEventListener('click', () => {
    const k = th.dataset.k;
    state.dir = k === state.sort ? (state.dir === 'asc' ? 'desc' : 'asc') : (k === 'feature' ? 'asc' : 'desc');
    state.sort = k; state.page = 1; render();
  }));
  const qi = document.getElementById('q'), fi = document.getElementById('filter');
  qi.value = state.q; fi.value = state.filter;
  qi.addEventListener('input', () => { state.q = qi.value; state.page = 1; render(); });
  fi.addEventListener('change', () => { state.filter = fi.value; state.page = 1; render(); });
  document.getElementById('prev').addEventListener('click', () => { state.page -= 1; render(); });
  document.getElementById('next').addEventListener('click', () => { state.page += 1; render(); });
  window.addEventListener('hashchange', () => { readState(); qi.value = state.q; fi.value = state.filter; render(); });
  render();
}
init();
)JS";

}  // namespace

std::string index_rows_json(const SiteData& site) {
  const FeatureStats& s = site.stats;
  const bool gt = site.has_gt();
  std::string out = "[";
  out.reserve(size_t(site.n_listed) * 64);
  for (int64_t f = 0; f < site.n_listed; ++f) {
    const auto i = size_t(f);
    int flags = s.dead[i] ? 1 : 0;
    if (site.has_flags()) flags |= (s.dense[i] ? 2 : 0) | (s.ultralow[i] ? 4 : 0);
    out += f ? ",[" : "[";
    for (const std::string& v : {std::to_string(f), json_num(s.density[i]), json_num(s.max_activation[i]),
                                  json_num(s.mean_activation[i]), std::to_string(s.fire_count[i]), std::to_string(flags),
                                  gt ? std::to_string(s.gt_match_index[i]) : std::string("-1"),
                                  gt ? json_num(s.gt_match_cosine[i]) : std::string("null")}) {
      out += v;
      out += ',';
    }
    out += script_json(top_token(site, f));
    out += ']';
  }
  return out + "]";
}

std::string render_index(const SiteData& site, const IndexLinks& links) {
  const FeatureStats& s = site.stats;
  const std::string hook = json_string(site.summary, "hook");
  std::ostringstream h;
  h << page_head("SAE latents · " + site.run_name + (hook.empty() ? "" : " · " + hook), "style.css", "index");
  h << "<h1>SAE latents: " << html_escape(site.run_name) << "</h1>\n<div class=\"cols\"><div>\n";
  summary_table(h, site.summary);
  h << "</div><div>\n";
  density_hist(h, site);
  if (site.has_gt()) gt_cosine_hist(h, site);
  h << "</div></div>\n";
  if (site.n_listed < s.d_sae)
    h << "<p class=\"note\">Listing latents 0&ndash;" << site.n_listed - 1 << " of " << s.d_sae
      << " (interpret.max_features).</p>\n";
  if (!site.has_examples) h << "<p class=\"note\">No examples.h5 in the stats directory: pages show statistics only.</p>\n";
  else if (!site.token_note.empty()) h << "<p class=\"note\">" << html_escape(site.token_note) << "</p>\n";
  if (links.neuronpedia_batches > 0)
    h << "<p class=\"note\">Neuronpedia-format export: <a href=\"neuronpedia/batch-0.json\">neuronpedia/batch-0.json</a>"
      << (links.neuronpedia_batches > 1 ? " &hellip; batch-" + std::to_string(links.neuronpedia_batches - 1) + ".json" : "")
      << "</p>\n";
  h << "<div id=\"controls\"><label>Search: <input id=\"q\" size=\"16\" placeholder=\"latent id"
    << (site.has_gt() ? ", true feature" : "") << (site.has_examples ? ", token text" : "") << "\"></label>"
    << "<label>Show: <select id=\"filter\"><option value=\"all\">all</option><option value=\"live\">live</option>"
       "<option value=\"dead\">dead</option>";
  if (site.has_flags()) h << "<option value=\"dense\">dense</option><option value=\"ultralow\">ultra-low density</option>";
  h << "</select></label><span id=\"count\"></span>"
       "<span id=\"pager\"><button id=\"prev\">&larr;</button><span id=\"pageinfo\"></span><button id=\"next\">&rarr;"
       "</button></span><span class=\"note\">click a column to sort</span></div>\n"
       "<table id=\"features\"><thead><tr></tr></thead><tbody></tbody></table>\n"
       "<noscript><p>The table of latents is drawn by a script; the pages are <a href=\"features/0.html\">features/0.html</a>"
       " onwards.</p></noscript>\n<script>\nconst DATA = {pages: "
    << site.n_listed << ", gt: " << (site.has_gt() ? "true" : "false")
    << ", top: " << (site.has_examples ? "true" : "false") << ", rows: " << index_rows_json(site) << "};\n"
    << kScript << "</script>\n</body></html>\n";
  return h.str();
}

}  // namespace saepipe
