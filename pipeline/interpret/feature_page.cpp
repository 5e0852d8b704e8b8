#include "pipeline/interpret/feature_page.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "pipeline/interpret/html_text.hpp"
#include "pipeline/interpret/site_style.hpp"
#include "pipeline/io/svg_plot.hpp"

namespace saepipe {

namespace {

std::string link_to(const SiteData& site, int64_t f, const std::string& text) {
  if (f < 0 || f >= site.n_listed) return html_escape(text);
  return "<a href=\"" + SiteData::page_name(f) + "\">" + html_escape(text) + "</a>";
}

void flags(std::ostringstream& h, const SiteData& site, int64_t f) {
  const FeatureStats& s = site.stats;
  h << "<p class=\"flags\">";
  if (s.dead[size_t(f)]) h << "<span class=\"flag dead\">dead</span>";
  else h << "<span class=\"flag live\">live</span>";
  if (site.has_flags()) {
    if (s.dense[size_t(f)]) h << "<span class=\"flag dense\" title=\"density &gt; " << fmt_num(s.dense_threshold)
                              << "\">dense</span>";
    if (s.ultralow[size_t(f)]) h << "<span class=\"flag ultralow\" title=\"density &lt; " << fmt_num(s.ultralow_threshold)
                                 << "\">ultra-low density</span>";
  }
  h << "</p>\n";
}

void stats_table(std::ostringstream& h, const SiteData& site, int64_t f) {
  const FeatureStats& s = site.stats;
  const auto i = size_t(f);
  auto row = [&](const char* id, const std::string& k, const std::string& v) {
    h << "<tr><th>" << html_escape(k) << "</th><td id=\"" << id << "\">" << v << "</td></tr>\n";
  };
  h << "<table class=\"kv\" id=\"stats\">\n";
  row("density", "density", fmt_num(s.density[i], 6));
  row("fires", "fires on", std::to_string(s.fire_count[i]) + " of " + std::to_string(s.n_tokens) + " tokens");
  row("log10_density", "log10 density", s.dead[i] ? "&minus;&infin; (dead)" : fmt_num(s.log10_density[i], 4));
  row("max_activation", "max activation", fmt_num(s.max_activation[i], 6));
  row("mean_activation", "mean of non-zero activations", fmt_num(s.mean_activation[i], 6));
  if (site.has_gt()) {
    const int64_t g = s.gt_match_index[i];
    row("gt_match", "matched true feature", g < 0 ? "none" : std::to_string(g) + " (cosine " + fmt_num(s.gt_match_cosine[i], 4) + ")");
  }
  if (s.n_layers > 0) {  // crosscoders: how strongly the latent writes to each hook
    std::string norms;
    for (int64_t l = 0; l < s.n_layers; ++l)
      norms += (l ? ", " : "") + fmt_num(s.decoder_norm_per_layer[i * size_t(s.n_layers) + size_t(l)], 4);
    row("decoder_norm_per_layer", "decoder norm per layer", norms);
  }
  h << "</table>\n";
}

void quantiles(std::ostringstream& h, const SiteData& site, int64_t f) {
  const FeatureStats& s = site.stats;
  const size_t Q = s.quantile_levels.size();
  h << "<section id=\"quantiles\"><h2>Quantiles of the non-zero activations</h2>\n<table class=\"kv\"><tr><th>level</th>";
  for (size_t q = 0; q < Q; ++q) h << "<th>" << fmt_num(s.quantile_levels[q], 4) << "</th>";
  h << "</tr><tr><th>activation</th>";
  for (size_t q = 0; q < Q; ++q) h << "<td>" << fmt_num(s.quantiles[size_t(f) * Q + q], 4) << "</td>";
  h << "</tr></table>\n<p class=\"note\">read off a fine histogram of each latent's activations (exact to one "
       "fine bin)</p></section>\n";
}

void activation_hist(std::ostringstream& h, const SiteData& site, int64_t f) {
  const FeatureStats& s = site.stats;
  const int64_t H = s.hist_bins;
  const double mx = s.max_activation[size_t(f)];
  std::vector<double> edges(size_t(H + 1)), counts(static_cast<size_t>(H));
  for (int64_t b = 0; b <= H; ++b) edges[size_t(b)] = mx * double(b) / double(H);
  for (int64_t b = 0; b < H; ++b) counts[size_t(b)] = double(s.hist_counts[size_t(f * H + b)]);
  HistogramStyle st;
  st.title = "Activation histogram (non-zero activations)";
  st.x_label = "activation";
  h << "<section id=\"hist\"><h2>Activations</h2>\n" << svg_histogram(edges, counts, st) << "\n</section>\n";
}

void logit_table(std::ostringstream& h, const SiteData& site, const int32_t* ids, const float* values, int64_t L,
                 const char* cls, const char* title) {
  h << "<table class=\"logits " << cls << "\"><tr><th colspan=\"2\">" << title << "</th></tr>\n";
  for (int64_t l = 0; l < L; ++l)
    h << "<tr><td class=\"tok\">" << html_escape(site.tokens.display(ids[l])) << "</td><td class=\"v\">"
      << fmt_num(values[l], 4) << "</td></tr>\n";
  h << "</table>\n";
}

void logits(std::ostringstream& h, const SiteData& site, int64_t f) {
  const FeatureStats& s = site.stats;
  const int64_t L = s.n_logit_tokens;
  h << "<section id=\"logits\"><h2>Direct logit effect</h2>\n<div class=\"cols\">\n";
  if (L > 0) {
    logit_table(h, site, s.logit_bottom_ids.data() + f * L, s.logit_bottom_values.data() + f * L, L, "neg",
                "negative logits");
    logit_table(h, site, s.logit_top_ids.data() + f * L, s.logit_top_values.data() + f * L, L, "pos",
                "positive logits");
  }
  if (site.has_logit_hist()) {
    const int64_t B = site.logit_hist_bins;
    const double lo = s.logit_hist_lo[size_t(f)], hi = s.logit_hist_hi[size_t(f)];
    std::vector<double> edges(size_t(B + 1)), counts(static_cast<size_t>(B));
    for (int64_t b = 0; b <= B; ++b) edges[size_t(b)] = lo + (hi - lo) * double(b) / double(B);
    for (int64_t b = 0; b < B; ++b) counts[size_t(b)] = double(s.logit_hist_counts[size_t(f * B + b)]);
    HistogramStyle st;
    st.title = "Logit effects over the vocabulary";
    st.x_label = "logit effect";
    st.split_at = 0;
    st.color = "#1a5fb4";
    st.color_below = "#c01c28";
    h << "<div>" << svg_histogram(edges, counts, st) << "</div>\n";
  }
  h << "</div>\n<p class=\"note\">W_dec[f] &middot; diag(ln_final.w) &middot; W_U (the final LayerNorm's centering "
       "applied, its normalisation ignored)</p></section>\n";
}

void neighbours(std::ostringstream& h, const SiteData& site, int64_t f) {
  const FeatureStats& s = site.stats;
  const int64_t K = s.n_neighbours;
  h << "<section id=\"neighbours\"><h2>Decoder neighbours</h2>\n<table class=\"kv\"><tr><th>latent</th><th>cosine</th>"
       "<th>density</th>"
    << (site.has_gt() ? "<th>true feature</th>" : "") << "</tr>\n";
  for (int64_t k = 0; k < K; ++k) {
    const int32_t n = s.neighbour_index[size_t(f * K + k)];
    if (n < 0) continue;
    h << "<tr><td class=\"nb\" data-f=\"" << n << "\">" << link_to(site, n, std::to_string(n)) << "</td><td>"
      << fmt_num(s.neighbour_cosine[size_t(f * K + k)], 4) << "</td><td>" << fmt_num(s.density[size_t(n)], 4) << "</td>";
    if (site.has_gt()) h << "<td>" << s.gt_match_index[size_t(n)] << "</td>";
    h << "</tr>\n";
  }
  h << "</table></section>\n";
}

void ground_truth(std::ostringstream& h, const SiteData& site, int64_t f) {
  const FeatureStats& s = site.stats;
  const int64_t g = s.gt_match_index[size_t(f)];
  h << "<section id=\"ground_truth\"><h2>Ground truth (synthetic store)</h2>\n<p>Best matching true feature: <strong>"
    << g << "</strong>, decoder cosine <strong>" << fmt_num(s.gt_match_cosine[size_t(f)], 4) << "</strong>.";
  if (g >= 0 && size_t(g) < site.latents_of_gt.size()) {
    const auto& others = site.latents_of_gt[size_t(g)];
    if (others.size() > 1) {
      h << " Other latents matched to it:";
      size_t shown = 0;
      for (int64_t o : others) {
        if (o == f) continue;
        if (shown++ == 20) {
          h << " &hellip;";
          break;
        }
        h << " " << link_to(site, o, std::to_string(o)) << " (" << fmt_num(s.gt_match_cosine[size_t(o)], 3) << ")";
      }
    } else {
      h << " No other latent matches it best.";
    }
  }
  h << "</p></section>\n";
}

void example_rows(std::ostringstream& h, const SiteData& site, const ExampleSet& set, int64_t f, int64_t first,
                  int64_t count, double scale) {
  const FeatureExamples& ex = site.examples;
  const int64_t C = ex.context(), E = set.per_feature;
  for (int64_t e = first; e < first + count; ++e) {
    const size_t slot = size_t(f * E + e);
    if (set.row[slot] < 0) continue;
    h << "<tr data-row=\"" << set.row[slot] << "\"><td class=\"act\">" << fmt_num(set.activation[slot], 4)
      << "</td><td class=\"ctx\">"
      << render_context(site.tokens, set.ctx_tokens.data() + slot * size_t(C), set.ctx_acts.data() + slot * size_t(C), C,
                        ex.context_before, scale)
      << "</td></tr>\n";
  }
}

int64_t filled(const ExampleSet& set, int64_t f, int64_t first, int64_t count) {
  int64_t n = 0;
  for (int64_t e = first; e < first + count; ++e) n += set.row[size_t(f * set.per_feature + e)] >= 0;
  return n;
}

void examples(std::ostringstream& h, const SiteData& site, int64_t f) {
  const FeatureExamples& ex = site.examples;
  const double mx = site.stats.max_activation[size_t(f)];
  const double scale = mx > 0 ? mx : 1.0;
  const std::string note = site.token_note.empty() ? "" : "<p class=\"note\">" + html_escape(site.token_note) + "</p>\n";

  h << "<section id=\"top\"><h2>Top activations</h2>\n" << note;
  if (filled(ex.top, f, 0, ex.top.per_feature) == 0) {
    h << "<p>No activating examples (the latent never fired on the held-out tokens).</p>\n";
  } else {
    h << "<table class=\"examples\">\n";
    example_rows(h, site, ex.top, f, 0, ex.top.per_feature, scale);
    h << "</table>\n";
  }
  h << "</section>\n";

  if (ex.interval_bins <= 0 || filled(ex.interval, f, 0, ex.interval.per_feature) == 0) return;
  h << "<section id=\"intervals\"><h2>Interval samples</h2>\n<p class=\"note\">" << ex.interval_bins
    << " equal bins of (0, max activation], up to " << ex.interval_per_bin << " random examples each</p>\n";
  for (int64_t b = ex.interval_bins - 1; b >= 0; --b) {
    const double lo = mx * double(b) / double(ex.interval_bins), hi = mx * double(b + 1) / double(ex.interval_bins);
    const int64_t n = filled(ex.interval, f, b * ex.interval_per_bin, ex.interval_per_bin);
    if (n == 0) continue;
    h << "<h3 class=\"bin\">Interval " << fmt_num(lo, 3) << " &ndash; " << fmt_num(hi, 3);
    const double frac = fraction_in_range(site, f, lo, hi);
    if (frac >= 0) h << " &middot; contains " << fmt_num(100.0 * frac, 3) << "% of the non-zero activations";
    h << "</h3>\n<table class=\"examples interval\">\n";
    example_rows(h, site, ex.interval, f, b * ex.interval_per_bin, ex.interval_per_bin, scale);
    h << "</table>\n";
  }
  h << "</section>\n";
}

}  // namespace

std::string render_context(const TokenText& tokens, const int32_t* ctx_tokens, const float* ctx_acts, int64_t C,
                           int64_t centre, double scale) {
  std::string out;
  for (int64_t c = 0; c < C; ++c) {
    if (ctx_tokens[c] < 0) continue;
    const std::string text = html_escape(tokens.display(ctx_tokens[c]));
    const float a = ctx_acts[c];
    const bool active = a > 0 && std::isfinite(a), example = c == centre;
    if (!active && !example) {
      out += text;
      continue;
    }
    out += "<span class=\"";
    out += active ? (example ? "a x" : "a") : "x";
    out += "\"";
    if (active) {
      char alpha[16];
      std::snprintf(alpha, sizeof alpha, "%.2f", std::clamp(double(a) / scale, 0.0, 1.0));
      out += " style=\"--a:";
      out += alpha;
      out += "\"";
    }
    out += " title=\"" + fmt_num(a, 4) + "\">" + text + "</span>";
  }
  return out;
}

std::string render_feature_page(const SiteData& site, int64_t f) {
  std::ostringstream h;
  const std::string hook = json_string(site.summary, "hook");
  h << page_head("Feature " + std::to_string(f) + " · " + site.run_name + (hook.empty() ? "" : " · " + hook), "../style.css",
                 "feature");
  h << "<nav><a href=\"../index.html#q=" << f << "\" id=\"nav-index\">&uarr; index</a>";
  if (f > 0) h << "<a href=\"" << SiteData::page_name(f - 1) << "\" rel=\"prev\" id=\"nav-prev\">&larr; " << f - 1 << "</a>";
  if (f + 1 < site.n_listed)
    h << "<a href=\"" << SiteData::page_name(f + 1) << "\" rel=\"next\" id=\"nav-next\">" << f + 1 << " &rarr;</a>";
  h << "</nav>\n<h1>Feature " << f << "</h1>\n<p class=\"note\">" << html_escape(site.run_name)
    << (hook.empty() ? "" : " &middot; " + html_escape(hook)) << " &middot; d_sae " << site.stats.d_sae << "</p>\n";
  flags(h, site, f);
  h << "<div class=\"cols\"><div>\n";
  stats_table(h, site, f);
  h << "</div>\n";
  const bool dead = site.stats.dead[size_t(f)] != 0;  // no activations: no histogram or quantiles
  if (site.has_hist() && !dead) {
    h << "<div>";
    activation_hist(h, site, f);
    h << "</div>";
  }
  h << "</div>\n";
  if (site.has_quantiles() && !dead) quantiles(h, site, f);
  if (site.has_gt()) ground_truth(h, site, f);
  if (site.has_logits() || site.has_logit_hist()) logits(h, site, f);
  if (site.has_neighbours()) neighbours(h, site, f);
  if (site.has_examples) examples(h, site, f);
  else h << "<section id=\"top\"><h2>Top activations</h2><p class=\"note\">No examples.h5 in the stats directory.</p></section>\n";
  h << "</body></html>\n";
  return h.str();
}

}  // namespace saepipe
