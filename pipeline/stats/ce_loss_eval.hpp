// CE loss recovered on held-out sequences: the store's tokens are run through the full model
// clean, with the SAE's reconstruction spliced in at its hook, and zero-ablated there
// (pipeline/model/spliced_loss.hpp). Sequences go in fixed global batches of 8, contiguous runs
// of batches per rank, and the sums are exact, so the figures are the same for any number of
// ranks.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/model/spliced_loss.hpp"
#include "pipeline/model/transformer.hpp"
#include "pipeline/sae/sae.hpp"

namespace saepipe {

struct CeLossInput {
  const TransformerModel* model = nullptr;  // full (load_transformer_full)
  StoreReader* reader = nullptr;
  std::string hook;                         // the SAE's hook
  int64_t first_row = 0, n_rows = 0;        // held-out rows (whole sequences)
  int64_t rows_per_sequence = 0;
  bool bos_excluded = false;                // the store dropped each sequence's BOS row
  int32_t bos_token = 0;
  int64_t max_tokens = 0;                   // cap on the rows used (whole sequences)
};

// Collective. Returns the sums over all ranks; n_predictions = 0 when no sequence fits.
SplicedLossSums heldout_spliced_loss(const CeLossInput& in, const SaeParams& params, const SaeConfig& cfg,
                                     const MpiEnv& env);

// summary.json fields: ce_loss_clean/spliced/zero, ce_loss_recovered, delta_loss, kl_div, ce_tokens.
void add_ce_loss_summary(const SplicedLossSums& s, nlohmann::json& summary);

}  // namespace saepipe
