// GPT-2's config.json for the CUDA GPT-2 model.
#include "pipeline/model/gpt2.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/model/fast_math.hpp"
#include "pipeline/model/safetensors.hpp"

namespace saepipe {

namespace {

int64_t need_positive(const nlohmann::json& j, const char* key, const std::string& where, int64_t fallback = -1) {
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback > 0) return fallback;
    user_error(where + ": lacks \"" + key + "\"");
  }
  // Bounded, so products of sizes (4 * n_embd, ...) cannot overflow.
  if (!j[key].is_number_integer() || j[key].get<int64_t>() < 1 || j[key].get<int64_t>() > INT32_MAX)
    user_error(where + ": \"" + key + "\" must be a positive integer below 2^31, got " + j[key].dump());
  return j[key].get<int64_t>();
}

}  // namespace

Gpt2Config Gpt2Config::from_json(const nlohmann::json& j, const std::string& where) {
  Gpt2Config c;
  c.n_embd = need_positive(j, "n_embd", where);
  c.n_layer = need_positive(j, "n_layer", where);
  c.n_head = need_positive(j, "n_head", where);
  c.n_positions = need_positive(j, "n_positions", where, j.contains("n_ctx") ? need_positive(j, "n_ctx", where) : -1);
  c.vocab_size = need_positive(j, "vocab_size", where);
  c.n_inner = need_positive(j, "n_inner", where, 4 * c.n_embd);
  if (c.n_embd % c.n_head != 0)
    user_error(where + ": n_embd " + std::to_string(c.n_embd) + " is not a multiple of n_head " + std::to_string(c.n_head));
  if (j.contains("layer_norm_epsilon")) {
    if (!j["layer_norm_epsilon"].is_number() || j["layer_norm_epsilon"].get<double>() <= 0)
      user_error(where + ": \"layer_norm_epsilon\" must be a positive number");
    c.layer_norm_epsilon = j["layer_norm_epsilon"].get<double>();
  }
  for (auto [key, field] : {std::pair{"bos_token_id", &c.bos_token_id}, std::pair{"eos_token_id", &c.eos_token_id}}) {
    if (j.contains(key) && !j[key].is_null()) {
      if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0 || j[key].get<int64_t>() >= c.vocab_size)
        user_error(where + ": \"" + key + "\" must be a token id below vocab_size");
      *field = j[key].get<int64_t>();
    }
  }
  c.bos_token_id = std::min(c.bos_token_id, c.vocab_size - 1);
  c.eos_token_id = std::min(c.eos_token_id, c.vocab_size - 1);
  const std::string act = j.value("activation_function", "gelu_new");
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.gelu_tanh = true;
  else if (act == "gelu") c.gelu_tanh = false;
  else user_error(where + ": activation_function \"" + act + "\" is not supported (gelu_new, gelu_pytorch_tanh, gelu)");
  c.scale_attn_weights = j.value("scale_attn_weights", true);
  if (j.value("scale_attn_by_inverse_layer_idx", false))
    user_error(where + ": scale_attn_by_inverse_layer_idx = true is not supported");
  return c;
}

nlohmann::json Gpt2Base::config_json() const {
  return {{"model_type", "gpt2"},       {"n_embd", cfg_.n_embd},           {"n_layer", cfg_.n_layer},
          {"n_head", cfg_.n_head},       {"n_positions", cfg_.n_positions}, {"vocab_size", cfg_.vocab_size},
          {"n_inner", cfg_.n_inner},     {"layer_norm_epsilon", cfg_.layer_norm_epsilon},
          {"gelu_tanh", cfg_.gelu_tanh}, {"scale_attn_weights", cfg_.scale_attn_weights}};
}

Gpt2Config read_model_config(const std::string& model_dir) {
  const std::string config_path = (std::filesystem::path(model_dir) / "config.json").string();
  if (!path_exists(config_path)) user_error(model_dir + ": no config.json (a Hugging Face model directory is needed)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    user_error(config_path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) user_error(config_path + ": not a JSON object");
  try {  // a field of the wrong JSON type (found by fuzz_model_files) is a user error too
    const std::string type = j.value("model_type", "");
    if (type != "gpt2")
      user_error(config_path + ": model_type \"" + type + "\" is not supported (supported: gpt2)");
    return Gpt2Config::from_json(j, config_path);
  } catch (const nlohmann::json::exception& e) {
    user_error(config_path + ": a field has the wrong type (" + std::string(e.what()) + ")");
  }
}

}  // namespace saepipe
