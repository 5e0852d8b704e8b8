// CE loss recovered on held-out sequences: the store's tokens are run through the full model
// clean, with the SAE's reconstruction spliced in at its hook, and zero-ablated there
// (pipeline/model/spliced_loss.hpp). Sequences go in fixed global batches of 8, contiguous runs
// of batches per rank, and the sums are exact, so the figures are the same for any number of
// ranks. A transcoder (input hook -> target hook) is spliced in place of the MLP it imitates:
// in each spliced pass the target's activation (blocks.L.hook_mlp_out) is replaced by the
// transcoder's output computed from the input hook's rows (blocks.L.hook_resid_mid) of the same
// tokens' clean forward, which is the same forward up to that point (the splice is after the
// input hook); the zero-ablated pass zeroes the MLP's output.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "pipeline/core/latent_grid.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/model/spliced_loss.hpp"
#include "pipeline/model/transformer.hpp"
#include "pipeline/sae/sae.hpp"

namespace saepipe {

struct CeLossInput {
  const TransformerModel* model = nullptr;  // full (load_transformer_full)
  StoreReader* reader = nullptr;
  std::string hook;                         // the hook replaced (a transcoder's target)
  std::string input_hook;                   // a transcoder's input hook; empty for an SAE
  int64_t first_row = 0, n_rows = 0;        // held-out rows (whole sequences)
  int64_t rows_per_sequence = 0;
  bool bos_excluded = false;                // the store dropped each sequence's BOS row
  int32_t bos_token = 0;
  int64_t max_tokens = 0;                   // cap on the rows used (whole sequences)
};

// Why a transcoder reading `input_hook` and writing `target_hook` cannot be spliced into `model`
// in place of an MLP (empty when it can: target blocks.L.hook_mlp_out, input
// blocks.L.hook_resid_mid of the same block). User error for hooks the model does not have.
std::string transcoder_splice_problem(const TransformerModel& model, const std::string& input_hook,
                                      const std::string& target_hook);

// Collective. Returns the sums over all ranks; n_predictions = 0 when no sequence fits.
// grid (latent shards, nullable): params holds this rank's latents; the sums are the same.
SplicedLossSums heldout_spliced_loss(const CeLossInput& in, const SaeParams& params, const SaeConfig& cfg,
                                     const MpiEnv& env, const LatentGrid* grid = nullptr);

// summary.json fields: ce_loss_clean/spliced/zero, ce_loss_recovered, delta_loss, kl_div, ce_tokens.
void add_ce_loss_summary(const SplicedLossSums& s, nlohmann::json& summary);

}  // namespace saepipe
