#include "pipeline/stages/resolve_bos.hpp"

#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/model/tokenizer_bos.hpp"

namespace saepipe {

std::string resolve_prepend_bos(Job& job, bool required) {
  const HarvestConfig& h = job.harvest;
  if (h.source != "model" || h.prepend_bos.has_value()) return "";
  if (!required && !path_exists(h.model)) return "";
  const TokenizerBos t = tokenizer_bos(h.model);
  set_resolved_prepend_bos(job, t.adds, t.id);
  return t.reason;
}

}  // namespace saepipe
