// harvest.prepend_bos = "auto": the model's tokenizer decides (pipeline/model/tokenizer_bos.hpp)
// and the decision goes into the job (job.harvest.prepend_bos, .bos_token) and its resolved
// text, so job.resolved.toml and every output's stored job say true or false.
#pragma once
#include <string>

namespace saepipe {

struct Job;

// Resolves "auto" for a model harvest. `required`: the model must be there (the harvest stage;
// user errors as tokenizer_bos raises them); otherwise "auto" stays when the model is not
// there (a later stage reading an existing store does not need it). Returns what decided it
// ("" when nothing was resolved).
std::string resolve_prepend_bos(Job& job, bool required);

}  // namespace saepipe
