#include "pipeline/stats/ce_loss_eval.hpp"

#include <algorithm>
#include <cmath>

#include "pipeline/model/blas_threads.hpp"
#include "pipeline/sae/latent_shard_merge.hpp"
#include "pipeline/stats/exact_sum.hpp"

namespace saepipe {

SplicedLossSums heldout_spliced_loss(const CeLossInput& in, const SaeParams& params, const SaeConfig& config,
                                     const MpiEnv& env, const LatentGrid* grid) {
  // Latent shards: the data groups split the batches; every shard of a group runs the model on
  // them and encodes its latents, the group sums the reconstruction, and the lead counts.
  const int groups = grid ? grid->data_groups() : env.size(), group = grid ? grid->data_group_index() : env.rank();
  LatentShard shard;
  SaeConfig cfg = config;
  if (grid && grid->shards() > 1) {
    shard = group_latent_shard(grid->shard_group(), int64_t(grid->shard()) * params.d_sae, params.d_sae,
                               params.d_sae * grid->shards());
    cfg.shard = &shard;
  }
  const int64_t R = in.rows_per_sequence, skip = in.bos_excluded ? 1 : 0, T = R + skip, D = params.d_in;
  const int64_t O = params.d_out;  // what the replaced hook holds (= D for an SAE)
  const int64_t n_seq = std::min(in.n_rows, in.max_tokens) / R;
  const int64_t kBatch = 8;  // sequences per forward pass, the same for any number of ranks
  const int64_t n_batches = (n_seq + kBatch - 1) / kBatch;
  const int64_t b_lo = n_batches * group / groups, b_hi = n_batches * (group + 1) / groups;
  const int64_t rounds = (n_batches + groups - 1) / groups;
  const HookPoint hook = in.model->hook(in.hook);
  const bool transcoder = !in.input_hook.empty();
  const HookPoint input_hook = transcoder ? in.model->hook(in.input_hook) : hook;
  ExactSums sums(5);
  int64_t n_pred = 0, n_pos = 0;
  std::vector<int32_t> rows(static_cast<size_t>(kBatch * R)), tokens(static_cast<size_t>(kBatch * T));
  SaeWorkspace ws;
  std::vector<float> kept, input;  // input [B*T, D]: a transcoder's input rows
  for (int64_t r = 0; r < rounds; ++r) {
    const int64_t b = b_lo + r;
    const int64_t s0 = b * kBatch, B = b < b_hi ? std::min(kBatch, n_seq - s0) : 0;
    env.all_or_none([&] { if (B > 0) in.reader->read_tokens(in.first_row + s0 * R, B * R, rows.data()); });
    if (B == 0) continue;
    for (int64_t s = 0; s < B; ++s) {
      if (skip) tokens[size_t(s * T)] = in.bos_token;
      std::copy_n(rows.begin() + s * R, R, tokens.begin() + s * T + skip);
    }
    // The SAE replaces what the hook sees (a transcoder: from its input hook's rows), except at
    // BOS rows the store left out (the SAE never saw them).
    auto reconstruct = [&](float* acts, int64_t N) {
      if (skip) {
        kept.resize(size_t(B * O));
        for (int64_t s = 0; s < B; ++s) std::copy_n(acts + s * T * O, O, kept.begin() + s * O);
      }
      sae_encode_decode(params, cfg, transcoder ? input.data() : acts, N, ws);
      std::copy_n(ws.recon.begin(), N * O, acts);
      if (skip)
        for (int64_t s = 0; s < B; ++s) std::copy_n(kept.begin() + s * O, O, acts + s * T * O);
    };
    SplicedLossSums part;
    {
      SingleThreadedBlas one_blas_thread;  // the model parallelises over OpenMP itself
      if (transcoder) {  // the input hook's rows of the same tokens (the splice comes after it)
        input.resize(size_t(B * T * D));
        in.model->forward(tokens.data(), B, T, {input_hook}, {input.data()});
      }
      part = spliced_loss(*in.model, tokens.data(), B, T, hook, reconstruct);
    }
    if (!shard.lead) continue;
    sums.add(0, part.clean_loss);
    sums.add(1, part.spliced_loss);
    sums.add(2, part.zero_loss);
    sums.add(3, part.kl_spliced);
    sums.add(4, part.kl_zero);
    n_pred += part.n_predictions;
    n_pos += part.n_positions;
  }
  sums.allreduce(env);
  SplicedLossSums out;
  out.clean_loss = sums.value(0);
  out.spliced_loss = sums.value(1);
  out.zero_loss = sums.value(2);
  out.kl_spliced = sums.value(3);
  out.kl_zero = sums.value(4);
  out.n_predictions = env.allreduce_sum(n_pred);
  out.n_positions = env.allreduce_sum(n_pos);
  return out;
}

std::string transcoder_splice_problem(const TransformerModel& model, const std::string& input_hook,
                                      const std::string& target_hook) {
  const HookPoint in = model.hook(input_hook), out = model.hook(target_hook);
  if (out.kind == HookKind::MlpOut && in.kind == HookKind::ResidMid && in.layer == out.layer) return "";
  return "the transcoder reads " + input_hook + " and writes " + target_hook +
         "; it is spliced in place of an MLP, so it must write blocks.L.hook_mlp_out from blocks.L.hook_resid_mid "
         "of the same block";
}

void add_ce_loss_summary(const SplicedLossSums& s, nlohmann::json& summary) {
  if (s.n_predictions == 0) return;
  const double n = double(s.n_predictions);
  summary["ce_loss_clean"] = s.clean_loss / n;
  summary["ce_loss_spliced"] = s.spliced_loss / n;
  summary["ce_loss_zero"] = s.zero_loss / n;
  const double rec = s.ce_loss_score();
  if (std::isfinite(rec)) summary["ce_loss_recovered"] = rec;
  summary["delta_loss"] = (s.spliced_loss - s.clean_loss) / n;
  summary["kl_div"] = s.kl_spliced / double(s.n_positions);
  summary["ce_tokens"] = s.n_predictions;
  summary["kl_positions"] = s.n_positions;
}

}  // namespace saepipe
