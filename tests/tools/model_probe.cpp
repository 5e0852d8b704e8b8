// Runs saepipe's model on given tokens and writes what tests/python/check_model_families.py
// compares with Hugging Face transformers:
//   model_probe MODEL_DIR TOKENS B T OUT_DIR EDIT_HOOK [W_DEC]
// TOKENS: B*T int32 little-endian. Writes OUT_DIR/hooks.json (the hook names, in order),
// OUT_DIR/<hook>.f32 ([B*T, D] from the harvest path, load_transformer), OUT_DIR/logits.f32
// ([B*T, V] from the full model: forward_final + unembed) and OUT_DIR/spliced.json (spliced_loss
// at EDIT_HOOK with the edit x * 0.5 + 0.25 * (d % 5 - 2) at channel d); with W_DEC ([F, D]
// float32), OUT_DIR/logit.json (logit_effects of its rows: top and bottom 5 ids and values).
// A user error prints one line and exits 2, as the stage programs do.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/model/blas_threads.hpp"
#include "pipeline/model/logit_effects.hpp"
#include "pipeline/model/spliced_loss.hpp"
#include "pipeline/model/transformer.hpp"
#include "pipeline/model/unembed.hpp"

using namespace saepipe;

namespace {

void write_f32(const std::string& path, const std::vector<float>& v) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 4));
}

int run(int argc, char** argv) {
  if (argc != 7 && argc != 8) {
    std::cerr << "usage: model_probe MODEL_DIR TOKENS B T OUT_DIR EDIT_HOOK [W_DEC]\n";
    return 2;
  }
  const std::string dir = argv[1], out = argv[5], edit_hook = argv[6];
  const int64_t B = std::stoll(argv[3]), T = std::stoll(argv[4]), N = B * T;
  std::vector<int32_t> tok(static_cast<size_t>(N));
  std::ifstream(argv[2], std::ios::binary).read(reinterpret_cast<char*>(tok.data()), std::streamsize(N * 4));
  SingleThreadedBlas blas;

  const auto full = load_transformer_full(dir);
  const int64_t D = full->d_model(), V = full->vocab_size(), L = full->n_layers();
  std::vector<std::string> names = {"hook_embed", "hook_pos_embed"};
  for (int64_t l = 0; l < L; ++l)
    for (const char* k : {"hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post"})
      names.push_back("blocks." + std::to_string(l) + "." + k);
  names.push_back("ln_final.hook_normalized");
  std::vector<std::string> kept;
  for (const std::string& n : names) {
    try {
      full->hook(n);
      kept.push_back(n);
    } catch (const SaeError&) {  // a hook the family does not have
    }
  }
  const auto part = load_transformer(dir, kept);
  std::vector<HookPoint> hooks;
  std::vector<std::vector<float>> acts(kept.size(), std::vector<float>(size_t(N * D)));
  std::vector<float*> ptr;
  for (size_t h = 0; h < kept.size(); ++h) hooks.push_back(part->hook(kept[h])), ptr.push_back(acts[h].data());
  part->forward(tok.data(), B, T, hooks, ptr);
  for (size_t h = 0; h < kept.size(); ++h) write_f32(out + "/" + kept[h] + ".f32", acts[h]);
  std::ofstream(out + "/hooks.json") << nlohmann::json(kept).dump();

  std::vector<float> fin(size_t(N * D)), logits(size_t(N * V));
  full->forward_final(tok.data(), B, T, full->hook(kept.back()), {ActivationEdit()}, {fin.data()});
  unembed(*full, fin.data(), N, logits.data());
  write_f32(out + "/logits.f32", logits);

  const ActivationEdit recon = [D](float* a, int64_t rows) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t d = 0; d < D; ++d) a[r * D + d] = a[r * D + d] * 0.5f + 0.25f * float(d % 5 - 2);
  };
  const SplicedLossSums s = spliced_loss(*full, tok.data(), B, T, full->hook(edit_hook), recon);
  std::ofstream(out + "/spliced.json") << nlohmann::json{{"clean", s.clean_loss}, {"spliced", s.spliced_loss},
                                                         {"zero", s.zero_loss}, {"kl_spliced", s.kl_spliced},
                                                         {"kl_zero", s.kl_zero}, {"n", s.n_predictions}}.dump();
  if (argc == 8) {
    std::ifstream in(argv[7], std::ios::binary | std::ios::ate);
    const int64_t F = int64_t(in.tellg()) / 4 / D;
    std::vector<float> w(size_t(F * D));
    in.seekg(0).read(reinterpret_cast<char*>(w.data()), std::streamsize(w.size() * 4));
    LogitEffects le;
    logit_effects(*full, w.data(), F, D, 5, 10, le);
    auto rows = [&](const auto& v) {
      nlohmann::json a = nlohmann::json::array();
      for (int64_t f = 0; f < F; ++f) a.push_back(std::vector<double>(v.begin() + f * 5, v.begin() + (f + 1) * 5));
      return a;
    };
    std::ofstream(out + "/logit.json") << nlohmann::json{{"top_ids", rows(le.logit_top_ids)},
                                                         {"top_values", rows(le.logit_top_values)},
                                                         {"bottom_ids", rows(le.logit_bottom_ids)},
                                                         {"bottom_values", rows(le.logit_bottom_values)}}.dump();
  }
  std::cout << full->describe() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const SaeError& e) {
    std::cerr << "saepipe-probe: error: " << e.what() << "\n";
    return e.exit_code();
  }
}
