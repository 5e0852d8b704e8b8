// The interpret stage's renderers on structs built here: text made valid and escaped, token
// ids decoded through a GPT-2 byte-level vocabulary, context highlighting, the feature page,
// the index's embedded rows, the Neuronpedia batch against its schema, and the shape checks
// that turn a malformed stats file into one user error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/interpret/feature_page.hpp"
#include "pipeline/interpret/html_text.hpp"
#include "pipeline/interpret/neuronpedia_export.hpp"
#include "pipeline/interpret/site_data.hpp"
#include "pipeline/interpret/site_index.hpp"
#include "pipeline/interpret/token_text.hpp"
#include "pipeline/io/svg_plot.hpp"

using namespace saepipe;
using nlohmann::json;

namespace {

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++n;
  return n;
}

// References that would make a page load something: scripts, styles, images or fonts from
// elsewhere (the SVG namespace URI is a name, not a fetch).
int external_references(const std::string& page) {
  int n = 0;
  for (const char* bad : {"src=\"http", "href=\"http", "url(http", "src=\"//", "href=\"//", "@import"}) n += int(count(page, bad));
  return n;
}

// Tokens 0..5: "a", " <b>", "\n", "&\"'", the first two bytes of "€" (E2 82), "x".
TokenText small_vocab() {
  return TokenText({"a", " <b>", "\n", "&\"'", std::string("\xE2\x82"), "x"}, "test-vocab");
}

// F = 4 latents, Q = 3 quantiles, H = 4 bins, K = 2 neighbours, L = 2 logit tokens,
// top E = 2, interval 2 bins x 1, C = 3 (before 1, after 1). Latent 3 is dead.
SiteData make_site(bool with_examples = true) {
  SiteData site;
  site.run_name = "unit";
  site.summary = {{"schema", "saepipe.stats.summary"}, {"hook", "blocks.3.hook_resid_post"}, {"n_tokens", 1000},
                  {"fvu", 0.125}, {"ce_loss_recovered", 0.93}, {"kl_div", 0.04}, {"some_new_metric", 7.5},
                  {"resolved_job", "[run]"}};
  FeatureStats& s = site.stats;
  s.n_tokens = 1000;
  s.d_sae = 4;
  s.fire_count = {100, 10, 500, 0};
  s.density = {0.1, 0.01, 0.5, 0.0};
  s.log10_density = {-1, -2, std::log10(0.5), -10};
  s.max_activation = {2.0f, 1.0f, 4.0f, 0.0f};
  s.mean_activation = {1.0f, 0.5f, 2.0f, 0.0f};
  s.dead = {0, 0, 0, 1};
  s.dense = {0, 0, 1, 0};
  s.ultralow = {0, 0, 0, 0};
  s.quantile_levels = {0.1, 0.5, 0.9};
  s.quantiles = {0.2f, 1.0f, 1.8f, 0.1f, 0.5f, 0.9f, 0.4f, 2.0f, 3.6f, 0, 0, 0};
  s.hist_bins = 4;
  s.hist_counts = {10, 20, 30, 40, 1, 2, 3, 4, 100, 100, 100, 200, 0, 0, 0, 0};
  s.density_hist_edges = {-3, -2, -1, 0};
  s.density_hist_counts = {0, 1, 2};
  s.n_neighbours = 2;
  s.neighbour_index = {2, 1, 0, 2, 0, 1, 0, -1};
  s.neighbour_cosine = {0.9f, 0.5f, 0.7f, 0.3f, 0.9f, 0.2f, 0.1f, 0.0f};
  s.gt_match_index = {7, 3, 7, 0};
  s.gt_match_cosine = {0.99f, 0.8f, 0.95f, 0.1f};
  s.n_logit_tokens = 2;
  s.logit_top_ids = {1, 0, 0, 1, 5, 0, 0, 1};
  s.logit_top_values = {3, 2, 3, 2, 3, 2, 3, 2};
  s.logit_bottom_ids = {3, 4, 3, 4, 3, 4, 3, 4};
  s.logit_bottom_values = {-3, -2, -3, -2, -3, -2, -3, -2};
  s.logit_hist_counts = {1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0};
  s.logit_hist_lo = {-3, -3, -3, -3};
  s.logit_hist_hi = {3, 3, 3, 3};
  site.has_examples = with_examples;
  if (with_examples) {
    FeatureExamples& e = site.examples;
    e.d_sae = 4;
    e.context_before = 1;
    e.context_after = 1;
    e.interval_bins = 2;
    e.interval_per_bin = 1;
    const int64_t C = 3;
    for (ExampleSet* set : {&e.top, &e.interval}) {
      set->per_feature = 2;
      set->row.assign(8, -1);
      set->activation.assign(8, 0);
      set->ctx_tokens.assign(size_t(8 * C), -1);
      set->ctx_acts.assign(size_t(8 * C), 0);
    }
    // Latent 0, top example 0: tokens [" <b>", "a", "\n"] with the example "a" at 2.0.
    e.top.row[0] = 42;
    e.top.activation[0] = 2.0f;
    e.top.ctx_tokens[0] = 1, e.top.ctx_tokens[1] = 0, e.top.ctx_tokens[2] = 2;
    e.top.ctx_acts[0] = 0.5f, e.top.ctx_acts[1] = 2.0f, e.top.ctx_acts[2] = 0.0f;
    // Latent 0, top example 1: at the start of a sequence (token -1 before it), token id 999.
    e.top.row[1] = 7;
    e.top.activation[1] = 1.0f;
    e.top.ctx_tokens[3] = -1, e.top.ctx_tokens[4] = 999, e.top.ctx_tokens[5] = 4;
    e.top.ctx_acts[4] = 1.0f;
    // Latent 0, interval bin 0 (0, 1]: one sample.
    e.interval.row[0] = 9;
    e.interval.activation[0] = 0.5f;
    e.interval.ctx_tokens[0] = 3, e.interval.ctx_tokens[1] = 5, e.interval.ctx_tokens[2] = 0;
    e.interval.ctx_acts[1] = 0.5f;
  }
  site.tokens = small_vocab();
  finish_site_data(site, "stats/features.h5", "stats/examples.h5");
  return site;
}

std::string user_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const SaeError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::User) << e.what();
    return e.what();
  }
  return "";
}

}  // namespace

TEST(InterpretText, MakeValidUtf8ReplacesEachInvalidSubpart) {
  EXPECT_EQ(make_valid_utf8("plain é € 𝄞"), "plain é € 𝄞");
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(make_valid_utf8("a\x80" "b"), "a" + R + "b");            // stray continuation byte
  EXPECT_EQ(make_valid_utf8("a\xE2\x82"), "a" + R);                  // truncated at the end
  EXPECT_EQ(make_valid_utf8("\xE2\x82" "x"), R + "x");               // truncated before ASCII
  EXPECT_EQ(make_valid_utf8("\xC0\x80"), R + R);                     // overlong NUL
  EXPECT_EQ(make_valid_utf8("\xED\xA0\x80"), R + R + R);             // a surrogate
  EXPECT_EQ(make_valid_utf8("\xF4\x90\x80\x80"), R + R + R + R);     // above U+10FFFF
  EXPECT_EQ(make_valid_utf8("\xFF"), R);
  EXPECT_EQ(make_valid_utf8(std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(InterpretText, EscapesForHtmlAndScripts) {
  EXPECT_EQ(html_escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  const std::string js = script_json(json{{"t", "</script><!-- \xE2\x80\xA8"}});
  EXPECT_EQ(js.find("</"), std::string::npos);
  EXPECT_EQ(js.find("<!--"), std::string::npos);
  EXPECT_NE(js.find("\\u2028"), std::string::npos);
  EXPECT_EQ(json::parse(js)["t"], "</script><!-- \xE2\x80\xA8");
  EXPECT_EQ(fmt_num(0.000123456, 3), "0.000123");
  EXPECT_EQ(fmt_num(std::nan("")), "nan");
}

TEST(InterpretText, TokenTextFromGpt2Vocabulary) {
  const std::string dir = "/tmp/saepipe-interpret-vocab-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  // "Ġthe" = " the", "Ċ" = "\n", "âĤ" = bytes E2 82 (two thirds of "€"), "<|endoftext|>".
  std::ofstream(dir + "/vocab.json") << R"({"Ġthe": 0, "Ċ": 1, "âĤ": 2, "<|endoftext|>": 3, "a": 4})";
  const TokenText t = TokenText::from_vocab_json(dir + "/vocab.json");
  EXPECT_EQ(t.vocab_size(), 5);
  EXPECT_EQ(t.text(0), " the");
  EXPECT_EQ(t.bytes(2), "\xE2\x82");
  EXPECT_EQ(t.text(2), "\xEF\xBF\xBD");
  EXPECT_EQ(t.display(1), "↵");
  EXPECT_EQ(t.text(3), "<|endoftext|>");
  EXPECT_EQ(t.text(77), "⟨77⟩");
  EXPECT_EQ(TokenText().text(12), "⟨12⟩");
  EXPECT_EQ(visible_controls(std::string("a\tb\x01\x7f", 5)), "a⇥b␁␡");

  std::ofstream(dir + "/bad.json") << R"({"a": 0, "b": 0})";
  EXPECT_NE(user_error_of([&] { TokenText::from_vocab_json(dir + "/bad.json"); }).find("bad.json: id 0 is given to two"),
            std::string::npos);
  std::ofstream(dir + "/notjson.json") << "{";
  EXPECT_NE(user_error_of([&] { TokenText::from_vocab_json(dir + "/notjson.json"); }).find("notjson.json: not valid JSON"),
            std::string::npos);
  std::ofstream(dir + "/alien.json") << R"({"日本": 0})";
  EXPECT_NE(user_error_of([&] { TokenText::from_vocab_json(dir + "/alien.json"); }).find("outside GPT-2's byte alphabet"),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(InterpretPage, ContextHighlightsActiveTokensAndMarksTheExample) {
  const TokenText t = small_vocab();
  const int32_t tok[4] = {-1, 1, 0, 3};
  const float act[4] = {9.0f, 0.5f, 2.0f, 0.0f};
  const std::string h = render_context(t, tok, act, 4, 2, 2.0);
  // Token -1 left out; " <b>" active at 0.25 of the max; "a" the example at 1.0; "&\"'" plain.
  EXPECT_EQ(h, "<span class=\"a\" style=\"--a:0.25\" title=\"0.5\"> &lt;b&gt;</span>"
               "<span class=\"a x\" style=\"--a:1.00\" title=\"2\">a</span>&amp;&quot;&#39;");
  // The example token with zero activation is still marked.
  const float zero[4] = {0, 0, 0, 0};
  EXPECT_NE(render_context(t, tok, zero, 4, 2, 1.0).find("<span class=\"x\" title=\"0\">a</span>"), std::string::npos);
}

TEST(InterpretPage, FeaturePageShowsEverySection) {
  const SiteData site = make_site();
  const std::string p = render_feature_page(site, 0);
  EXPECT_EQ(p.find("<script"), std::string::npos) << "feature pages are static";
  EXPECT_NE(p.find("<h1>Feature 0</h1>"), std::string::npos);
  EXPECT_NE(p.find("id=\"density\">0.1<"), std::string::npos);
  EXPECT_NE(p.find("id=\"quantiles\""), std::string::npos);
  EXPECT_NE(p.find("<svg class=\"hist\""), std::string::npos);
  EXPECT_EQ(count(p, "<rect"), 4u + 4u);  // activation histogram + logit histogram bars
  EXPECT_NE(p.find("id=\"logits\""), std::string::npos);
  EXPECT_NE(p.find("<td class=\"tok\"> &lt;b&gt;</td>"), std::string::npos);  // a logit token, escaped
  // Neighbours 2 and 1 link to their pages; true feature 7 also matched by latent 2.
  EXPECT_NE(p.find("<td class=\"nb\" data-f=\"2\"><a href=\"2.html\">2</a>"), std::string::npos);
  EXPECT_NE(p.find("<td class=\"nb\" data-f=\"1\"><a href=\"1.html\">1</a>"), std::string::npos);
  EXPECT_NE(p.find("Best matching true feature: <strong>7</strong>"), std::string::npos);
  EXPECT_NE(p.find("Other latents matched to it: <a href=\"2.html\">2</a>"), std::string::npos);
  // Two top examples, one interval sample; highlighted tokens; unknown id 999 as ⟨999⟩; the
  // partial character as U+FFFD.
  EXPECT_NE(p.find("<tr data-row=\"42\"><td class=\"act\">2</td>"), std::string::npos);
  EXPECT_NE(p.find("<tr data-row=\"7\">"), std::string::npos);
  EXPECT_NE(p.find("<tr data-row=\"9\">"), std::string::npos);
  EXPECT_NE(p.find("⟨999⟩"), std::string::npos);
  EXPECT_NE(p.find("\xEF\xBF\xBD"), std::string::npos);
  EXPECT_NE(p.find("↵"), std::string::npos);
  EXPECT_NE(p.find("contains 30% of the non-zero activations"), std::string::npos);  // hist bins 0, 1 of latent 0: 30/100
  EXPECT_EQ(count(p, "class=\"a x\""), 3u);
  // Navigation.
  EXPECT_NE(p.find("href=\"1.html\" rel=\"next\""), std::string::npos);
  EXPECT_EQ(p.find("rel=\"prev\""), std::string::npos);
  EXPECT_NE(render_feature_page(site, 3).find("<span class=\"flag dead\">dead</span>"), std::string::npos);
  EXPECT_EQ(render_feature_page(site, 3).find("rel=\"next\""), std::string::npos);
  EXPECT_EQ(render_feature_page(site, 3).find("id=\"quantiles\""), std::string::npos);  // dead: nothing to show
  EXPECT_EQ(render_feature_page(site, 3).find("id=\"hist\""), std::string::npos);
  EXPECT_NE(render_feature_page(site, 2).find("<span class=\"flag dense\""), std::string::npos);
  // Latents beyond the listed ones have no page: no link.
  SiteData few = make_site();
  few.n_listed = 2;
  EXPECT_NE(render_feature_page(few, 0).find("data-f=\"2\">2</td>"), std::string::npos);
}

TEST(InterpretPage, WithoutOptionalData) {
  SiteData site = make_site(false);
  FeatureStats& s = site.stats;
  s.quantile_levels.clear(), s.quantiles.clear(), s.hist_bins = 0, s.hist_counts.clear(), s.n_neighbours = 0;
  s.neighbour_index.clear(), s.neighbour_cosine.clear(), s.gt_match_index.clear(), s.gt_match_cosine.clear();
  s.n_logit_tokens = 0, s.logit_top_ids.clear(), s.logit_top_values.clear(), s.logit_bottom_ids.clear();
  s.logit_bottom_values.clear(), s.logit_hist_counts.clear(), s.logit_hist_lo.clear(), s.logit_hist_hi.clear();
  s.dense.clear(), s.ultralow.clear(), s.density_hist_edges.clear(), s.density_hist_counts.clear();
  finish_site_data(site, "f.h5", "e.h5");
  const std::string p = render_feature_page(site, 1);
  EXPECT_EQ(p.find("id=\"quantiles\""), std::string::npos);
  EXPECT_EQ(p.find("id=\"neighbours\""), std::string::npos);
  EXPECT_NE(p.find("No examples.h5"), std::string::npos);
  const std::string index = render_index(site);
  EXPECT_NE(index.find("<svg class=\"hist\""), std::string::npos);  // density histogram from log10_density
  EXPECT_NE(index.find("gt: false"), std::string::npos);
  const json b = neuronpedia_batch(site, 0, 4, {});
  EXPECT_EQ(b["features"].size(), 4u);
  EXPECT_TRUE(b["features"][1]["activations"].empty());
}

TEST(InterpretIndex, SummaryAndEmbeddedRows) {
  SiteData site = make_site();
  // A top token that tries to close the script element.
  site.tokens = TokenText({"</script><b>", "x", "y", "z", "w", "v"});
  const std::string h = render_index(site, IndexLinks{1});
  EXPECT_EQ(count(h, "</script>"), 1u);
  EXPECT_EQ(count(h, "<script>"), 1u);
  EXPECT_NE(h.find("<tr data-key=\"ce_loss_recovered\"><th>CE loss recovered</th><td>0.93</td>"), std::string::npos);
  EXPECT_NE(h.find("data-key=\"kl_div\""), std::string::npos);
  EXPECT_NE(h.find("data-key=\"some_new_metric\""), std::string::npos);  // unknown fields still shown
  EXPECT_EQ(h.find("data-key=\"resolved_job\""), std::string::npos);
  EXPECT_NE(h.find("neuronpedia/batch-0.json"), std::string::npos);
  const json rows = json::parse(index_rows_json(site));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], json::parse(R"([0, 0.1, 2, 1, 100, 0, 7, 0.99, "</script><b>"])"));
  EXPECT_EQ(rows[2][5], 2);  // dense
  EXPECT_EQ(rows[3][5], 1);  // dead
  EXPECT_EQ(rows[3][8], "");
  EXPECT_EQ(external_references(h), 0);
}

TEST(InterpretExport, NeuronpediaBatchMatchesItsSchema) {
  const SiteData site = make_site();
  NeuronpediaMeta meta;
  meta.model_id = "gpt2-small";
  meta.sae_set = "res-unit";
  meta.layer = hook_layer("blocks.3.hook_resid_post");
  meta.n_tokens_in_prompt = 128;
  const json b = neuronpedia_batch(site, 0, 3, meta);
  EXPECT_EQ(b["layer"], 3);
  ASSERT_EQ(b["features"].size(), 3u);
  const json& f0 = b["features"][0];
  EXPECT_EQ(f0["feature_index"], 0);
  EXPECT_EQ(f0["pos_str"], json::parse(R"([" <b>", "a"])"));
  EXPECT_EQ(f0["neg_str"][1], "\xEF\xBF\xBD");
  EXPECT_DOUBLE_EQ(f0["frac_nonzero"].get<double>(), 0.1);
  EXPECT_EQ(f0["freq_hist_data_bar_heights"], json::parse("[10, 20, 30, 40]"));
  EXPECT_EQ(f0["freq_hist_data_bar_values"], json::parse("[0.25, 0.75, 1.25, 1.75]"));
  EXPECT_EQ(f0["logits_hist_data_bar_values"], json::parse("[-2.25, -0.75, 0.75, 2.25]"));
  EXPECT_EQ(f0["vector"], json::array());
  // Neighbours and the max activation: in the sidecar, by latent.
  const json extras = neuronpedia_feature_extras(site, 0, 3, meta);
  ASSERT_EQ(extras["features"].size(), 3u);
  EXPECT_EQ(extras["features"][0]["index"], 0);
  EXPECT_EQ(extras["features"][0]["topkCosSimIndices"], json::parse("[2, 1]"));
  EXPECT_EQ(extras["features"][0]["maxActApprox"], double(site.stats.max_activation[0]));
  EXPECT_EQ(extras["layer"], 3);
  ASSERT_EQ(f0["activations"].size(), 3u);  // two top, one interval
  const json& a0 = f0["activations"][0];
  EXPECT_EQ(a0["tokens"], json::parse(R"([" <b>", "a", "\n"])"));
  EXPECT_EQ(a0["values"], json::parse("[0.5, 2.0, 0.0]"));
  EXPECT_EQ(a0["qualifying_token_index"], 1);
  EXPECT_EQ(a0["bin_min"], -1.0);
  const json& a1 = f0["activations"][1];  // the token before the sequence start is dropped
  EXPECT_EQ(a1["tokens"], json::parse(R"(["⟨999⟩", "\uFFFD"])"));
  EXPECT_EQ(a1["qualifying_token_index"], 0);
  const json& a2 = f0["activations"][2];
  EXPECT_EQ(a2["bin_min"], 0.0);
  EXPECT_EQ(a2["bin_max"], 1.0);
  EXPECT_DOUBLE_EQ(a2["bin_contains"].get<double>(), 0.3);  // hist bins 0, 1 of latent 0: 30 of 100
  // Keys: exactly the schema's, at each level (required = properties there).
  const json schema = json::parse(std::ifstream(std::string(SAEPIPE_SOURCE_DIR) + "/schemas/neuronpedia_batch.schema.json"));
  auto same_keys = [](const json& obj, const json& s, const char* what) {
    std::set<std::string> have, want;
    for (auto& [k, v] : obj.items()) have.insert(k);
    for (auto& k : s["required"]) want.insert(k.get<std::string>());
    EXPECT_EQ(have, want) << what;
    for (auto& [k, v] : s["properties"].items()) EXPECT_TRUE(obj.contains(k)) << what << ": " << k;
  };
  same_keys(b, schema, "batch");
  same_keys(f0, schema["$defs"]["feature"], "feature");
  same_keys(a0, schema["$defs"]["activation"], "activation");
  const json extras_schema =
      json::parse(std::ifstream(std::string(SAEPIPE_SOURCE_DIR) + "/schemas/neuronpedia_extras.schema.json"));
  same_keys(extras, extras_schema, "extras");
  same_keys(extras["features"][1], extras_schema["$defs"]["feature"], "extras feature");
  EXPECT_NO_THROW(b.dump());  // valid UTF-8 throughout
}

TEST(InterpretData, MalformedShapesAreOneUserError) {
  SiteData site = make_site();
  site.stats.quantiles.pop_back();
  EXPECT_NE(user_error_of([&] { finish_site_data(site, "s/features.h5", "s/examples.h5"); })
                .find("s/features.h5: /quantiles has 11 values, expected d_sae x levels = 12"),
            std::string::npos);
  site = make_site();
  site.stats.neighbour_index[3] = 4;
  EXPECT_NE(user_error_of([&] { finish_site_data(site, "s/features.h5", "s/examples.h5"); }).find("/neighbour_index holds 4"),
            std::string::npos);
  site = make_site();
  site.examples.d_sae = 5;
  EXPECT_NE(user_error_of([&] { finish_site_data(site, "s/features.h5", "s/examples.h5"); }).find("s/examples.h5: d_sae is 5"),
            std::string::npos);
  site = make_site();
  site.examples.top.ctx_acts.pop_back();
  EXPECT_NE(user_error_of([&] { finish_site_data(site, "s/features.h5", "s/examples.h5"); }).find("/top/ctx_acts"),
            std::string::npos);
  EXPECT_EQ(hook_layer("blocks.11.hook_mlp_out"), 11);
  EXPECT_EQ(hook_layer("hook_embed"), 0);
}

TEST(InterpretSvg, HistogramBarsAndNoData) {
  HistogramStyle st;
  st.title = "a <title>";
  const std::string s = svg_histogram({0, 1, 2, 3}, {1, 0, 5}, st);
  EXPECT_EQ(count(s, "<rect"), 3u);
  EXPECT_NE(s.find("a &lt;title&gt;"), std::string::npos);
  EXPECT_NE(svg_histogram({0, 1}, {1, 2}, st).find("no data"), std::string::npos);
  st.split_at = 1.5;
  const std::string split = svg_histogram({0, 1, 2, 3}, {1, 1, 1}, st);
  EXPECT_EQ(count(split, st.color_below), 1u);  // centre 0.5 only
}

TEST(InterpretJob, NeuronpediaKeys) {
  Job d = parse_job("[run]\nname = \"t\"\n", "job.toml");
  EXPECT_TRUE(d.interpret.neuronpedia);
  EXPECT_EQ(d.interpret.neuronpedia_batch_size, 128);
  Job j = parse_job("[run]\nname = \"t\"\n[interpret]\nneuronpedia = false\nneuronpedia_batch_size = 16\n"
                    "neuronpedia_model_id = \"gpt2-small\"\nneuronpedia_sae_set = \"res-x\"\n",
                    "job.toml");
  EXPECT_FALSE(j.interpret.neuronpedia);
  EXPECT_EQ(j.interpret.neuronpedia_batch_size, 16);
  EXPECT_EQ(j.interpret.neuronpedia_model_id, "gpt2-small");
  EXPECT_EQ(j.interpret.neuronpedia_sae_set, "res-x");
  EXPECT_NE(user_error_of([] { parse_job("[run]\nname = \"t\"\n[interpret]\nneuronpedia_batch_size = 0\n", "job.toml"); })
                .find("interpret.neuronpedia_batch_size"),
            std::string::npos);
}
