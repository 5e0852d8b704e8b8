// A latent shard's part of the dictionary's vectors (latent_shard_state.hpp).
#include "pipeline/sae/latent_shard_state.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstring>

#include "pipeline/core/errors.hpp"
#include "pipeline/sae/resample.hpp"
#include "pipeline/sae/train_step.hpp"

namespace saepipe {

namespace {

using Segment = LatentSegment;

// SaeParams' offsets for the range's dictionary with F latents, without its buffer.
SaeParams layout_of(const LatentRange& r, int64_t F) {
  SaeShape shape = whole_shape(r);
  shape.d_sae = F;
  SaeParams p;
  p.d_in = shape.d_in;
  p.d_out = shape.d_out > 0 ? shape.d_out : shape.d_in;
  p.d_sae = F;
  p.transcoder = shape.transcoder;
  p.skip = shape.skip;
  p.gated = shape.gated;
  p.layers = shape.layers;
  return p;
}
// W_encT [F,D] | b_enc [F] | W_dec [F,O] | log_threshold [F] | r_mag, b_mag [F] (gated).
std::vector<Segment> latent_segments(const LatentRange& r) {
  const SaeParams w = layout_of(r, r.F), s = layout_of(r, r.Fs);
  std::vector<Segment> seg = {{w.off_W_encT(), s.off_W_encT(), w.d_in},
                              {w.off_b_enc(), s.off_b_enc(), 1},
                              {w.off_W_dec(), s.off_W_dec(), w.d_out},
                              {w.off_log_threshold(), s.off_log_threshold(), 1}};
  if (w.gated) seg.insert(seg.end(), {{w.off_r_mag(), s.off_r_mag(), 1}, {w.off_b_mag(), s.off_b_mag(), 1}});
  return seg;
}
// Copies the shared segments from one layout to the other.
void copy_shared(const LatentRange& r, const float* from, bool from_whole, float* to) {
  for (const Segment& g : shared_segments(r))
    std::copy_n(from + (from_whole ? g.full_off : g.shard_off), g.row, to + (from_whole ? g.shard_off : g.full_off));
}

constexpr int64_t kPiece = int64_t(1) << 26;  // floats per collective

}  // namespace

SaeShape whole_shape(const LatentRange& r) {
  SaeShape s = r.shape.d_in > 0 ? r.shape : SaeShape{r.D, r.F};
  s.d_sae = r.F;
  return s;
}

SaeShape part_shape(const LatentRange& r) {
  SaeShape s = whole_shape(r);
  s.d_sae = r.Fs;
  return s;
}

std::vector<LatentSegment> shared_segments(const LatentRange& r) {
  const SaeParams w = layout_of(r, r.F), s = layout_of(r, r.Fs);
  std::vector<Segment> seg = {{w.off_b_dec(), s.off_b_dec(), w.d_out}};
  if (w.skip) seg.push_back({w.off_W_skip(), s.off_W_skip(), w.d_out * w.d_in});
  return seg;
}

void take_latent_range(const LatentRange& r, const std::vector<float>& full, std::vector<float>& mine) {
  for (const Segment& g : latent_segments(r))
    std::copy(full.begin() + g.full_off + r.first * g.row, full.begin() + g.full_off + (r.first + r.Fs) * g.row,
              mine.begin() + g.shard_off);
  copy_shared(r, full.data(), true, mine.data());
}

void gather_latent_range(const MpiEnv& group, const LatentRange& r, const std::vector<float>& mine,
                         std::vector<float>& full) {
  const int S = group.size();
  for (const Segment& g : latent_segments(r)) {
    const int64_t len = r.Fs * g.row;
    for (int64_t off = 0; off < len; off += kPiece) {
      const int64_t n = std::min(kPiece, len - off);
      const std::vector<char> all = group.allgather_bytes(mine.data() + g.shard_off + off, n * int64_t(sizeof(float)));
      for (int s = 0; s < S; ++s)
        std::memcpy(full.data() + g.full_off + int64_t(s) * len + off, all.data() + size_t(s) * size_t(n) * 4,
                    size_t(n) * 4);
    }
  }
  copy_shared(r, mine.data(), false, full.data());
}

void gather_latent_range_to_root(const MpiEnv& group, const LatentRange& r, const std::vector<float>& mine,
                                 std::vector<float>& full) {
  const int S = group.size();
  std::vector<float> all;
  for (const Segment& g : latent_segments(r)) {
    const int64_t len = r.Fs * g.row;
    for (int64_t off = 0; off < len; off += kPiece) {
      const int64_t n = std::min(kPiece, len - off);
      if (group.is_root()) all.resize(size_t(n) * size_t(S));
      SAE_MPI_CHECK(MPI_Gather(mine.data() + g.shard_off + off, int(n), MPI_FLOAT, all.data(), int(n), MPI_FLOAT, 0,
                               group.comm()));
      if (!group.is_root()) continue;
      for (int s = 0; s < S; ++s)
        std::copy_n(all.data() + size_t(s) * size_t(n), n, full.data() + g.full_off + int64_t(s) * len + off);
    }
  }
  if (group.is_root()) copy_shared(r, mine.data(), false, full.data());
}

void take_latent_state(const LatentRange& r, const SaeParams& whole, const AdamState& whole_adam, SaeParams& part,
                       AdamState& part_adam) {
  take_latent_range(r, whole.data, part.data);
  part_adam = AdamState{};
  part_adam.t = whole_adam.t;
  if (whole_adam.m.empty()) return;
  part_adam.m.resize(part.data.size());
  part_adam.v.resize(part.data.size());
  take_latent_range(r, whole_adam.m, part_adam.m);
  take_latent_range(r, whole_adam.v, part_adam.v);
}

void gather_latent_state(const MpiEnv& group, const LatentRange& r, const SaeParams& part,
                         const AdamState& part_adam, SaeParams& whole, AdamState& whole_adam) {
  whole = SaeParams(whole_shape(r));
  gather_latent_range(group, r, part.data, whole.data);
  whole_adam = AdamState{};
  whole_adam.t = part_adam.t;
  if (part_adam.m.empty()) return;  // the same on every shard: they step together
  whole_adam.m.resize(whole.data.size());
  whole_adam.v.resize(whole.data.size());
  gather_latent_range(group, r, part_adam.m, whole_adam.m);
  gather_latent_range(group, r, part_adam.v, whole_adam.v);
}

void resample_latent_range(const MpiEnv& group, const LatentRange& r, SaeParams& mine, AdamState& adam,
                           const std::vector<int32_t>& latents, const std::vector<double>& rows,
                           const std::vector<uint8_t>& dead) {
  const int S = group.size();
  const int64_t Fs = r.Fs;
  std::vector<double> norms(size_t(2 * Fs));
  latent_row_norms(mine, norms.data(), norms.data() + Fs);
  const std::vector<char> all = group.allgather_bytes(norms.data(), 2 * Fs * int64_t(sizeof(double)));
  const auto* per_shard = reinterpret_cast<const double*>(all.data());  // [S][enc Fs | dec Fs]
  std::vector<double> enc(static_cast<size_t>(r.F)), dec(static_cast<size_t>(r.F));
  for (int s = 0; s < S; ++s) {
    std::copy(per_shard + 2 * s * Fs, per_shard + (2 * s + 1) * Fs, enc.begin() + s * Fs);
    std::copy(per_shard + (2 * s + 1) * Fs, per_shard + (2 * s + 2) * Fs, dec.begin() + s * Fs);
  }
  const std::vector<float> inputs = resample_inputs(rows, mine.b_dec(), mine.d_in);
  resample_rows(mine, adam, latents, inputs.data(), r.first, resample_scales(enc.data(), dec.data(), dead));
}

}  // namespace saepipe
