// One latent's page, interpret/features/<f>.html: statistics and flags, quantiles, the
// activation histogram, logit effects, decoder neighbours, the matched true feature
// (synthetic stores), the top activating contexts and the interval samples with per-token
// highlighting (background ∝ activation / the latent's max; the example token outlined).
// Static HTML: no script.
#pragma once
#include <cstdint>
#include <string>

#include "pipeline/interpret/site_data.hpp"

namespace saepipe {

std::string render_feature_page(const SiteData& site, int64_t f);

// One example's context as HTML: tokens with a non-zero activation are <span class="a">
// with --a = activation / scale (clamped to [0, 1]) and the value as title; the example token
// (index `centre`) also has class "x"; tokens -1 (beyond the sequence) are left out.
std::string render_context(const TokenText& tokens, const int32_t* ctx_tokens, const float* ctx_acts, int64_t C,
                           int64_t centre, double scale);

}  // namespace saepipe
