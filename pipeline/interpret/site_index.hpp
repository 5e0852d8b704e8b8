// interpret/index.html: the summary metrics (every field of summary.json that is present,
// CE-loss ones included), the log10-density histogram, and the table of latents (density,
// max and mean activation, fire count, flags, the top example's token, and for synthetic
// stores the matched true feature and its cosine), embedded as JSON and rendered by an inline
// script with sorting, search, a flag filter and pages of rows (so d_sae = 24576 stays fast).
// The view's state lives in the URL fragment, e.g. index.html#sort=density&dir=asc&q=12&page=2;
// the same keys are honoured as query parameters (index.html?sort=max).
#pragma once
#include <string>

#include "pipeline/interpret/site_data.hpp"

namespace saepipe {

struct IndexLinks {
  int64_t neuronpedia_batches = 0;  // neuronpedia/batch-<i>.json written, 0 = none
};

std::string render_index(const SiteData& site, const IndexLinks& links = {});

// The table rows as the script gets them: [[f, density, max, mean, fires, flags, gt, gt_cos,
// top], ...] with flags = 1 dead | 2 dense | 4 ultra-low; gt -1 and gt_cos null without ground
// truth; top "" without examples. Numbers in 6 significant digits.
std::string index_rows_json(const SiteData& site);

}  // namespace saepipe
