// SAE checkpoints, machine-readable layouts, and h5py (an independent reader) on our files.
#include "pipeline/io/stats_file.hpp"
#include "tests/unit/h5_test_util.hpp"
TEST(Checkpoint, RoundTrip) {
  TempDir dir;
  const saepipe::SaeCheckpoint c = make_checkpoint(6, 10, 11);
  saepipe::write_sae_checkpoint(dir / "sae.h5", c);
  EXPECT_FALSE(fs::exists(dir / "sae.h5.tmp"));
  const saepipe::SaeCheckpoint r = saepipe::read_sae_checkpoint(dir / "sae.h5");
  EXPECT_EQ(r.d_in, 6);
  EXPECT_EQ(r.d_sae, 10);
  EXPECT_EQ(r.W_enc, c.W_enc);
  EXPECT_EQ(r.b_enc, c.b_enc);
  EXPECT_EQ(r.W_dec, c.W_dec);
  EXPECT_EQ(r.b_dec, c.b_dec);
  EXPECT_EQ(r.threshold, c.threshold);
  EXPECT_EQ(r.architecture, "topk");
  EXPECT_EQ(r.hook, c.hook);
  EXPECT_EQ(r.resolved_job, c.resolved_job);
  EXPECT_EQ(r.store, c.store);
  EXPECT_EQ(r.k, 4);
  EXPECT_EQ(r.tokens_seen, 123456789012);
  EXPECT_EQ(r.step, 42);
  EXPECT_EQ(r.heldout_first_token, 180);
  EXPECT_EQ(r.heldout_n_tokens, 20);
  // No threshold: written as zeros.
  saepipe::SaeCheckpoint c2 = c;
  c2.threshold.clear();
  saepipe::write_sae_checkpoint(dir / "sae.h5", c2);  // replaces the previous file
  EXPECT_EQ(saepipe::read_sae_checkpoint(dir / "sae.h5").threshold, std::vector<float>(10, 0.0f));
  h5::File f = h5::open_file(dir / "sae.h5");
  EXPECT_TRUE(f.open_dataset("W_enc").has_fletcher32());
  EXPECT_EQ(f.read_string_attribute("schema"), "saepipe.sae");
}

TEST(Checkpoint, ErrorsNameFileAndItem) {
  TempDir dir;
  const std::string path = dir / "sae.h5";
  EXPECT_SAE_ERROR(saepipe::read_sae_checkpoint(path), ErrorKind::User, {path, "no such file"});
  // An activation shard is not a checkpoint.
  TestStore st;
  st.write(dir / "store");
  EXPECT_SAE_ERROR(saepipe::read_sae_checkpoint(dir / "store/shard-0.h5"), ErrorKind::User,
                   {"shard-0.h5", "'saepipe.activations.shard'", "expected 'saepipe.sae'"});
  saepipe::write_sae_checkpoint(path, make_checkpoint(6, 10, 1));
  auto edit = [&](const std::function<void(h5::File&)>& fn) {
    saepipe::write_sae_checkpoint(path, make_checkpoint(6, 10, 1));
    h5::File f = h5::open_file(path, true);
    fn(f);
    f.close();
  };
  edit([](h5::File& f) { f.write_int_attribute("version", 3); });
  EXPECT_SAE_ERROR(saepipe::read_sae_checkpoint(path), ErrorKind::User, {path, "version 3 is not supported"});
  edit([](h5::File& f) { f.write_int_attribute("d_sae", 11); });
  EXPECT_SAE_ERROR(saepipe::read_sae_checkpoint(path), ErrorKind::User, {path + ": /W_enc", "[6, 10]", "[d_in, d_sae] = [6, 11]"});
  edit([](h5::File& f) { H5Adelete(f.id(), "hook"); });
  EXPECT_SAE_ERROR(saepipe::read_sae_checkpoint(path), ErrorKind::User, {path, "'hook' is missing"});
  edit([](h5::File& f) { H5Ldelete(f.id(), "b_dec", H5P_DEFAULT); });
  EXPECT_SAE_ERROR(saepipe::read_sae_checkpoint(path), ErrorKind::User, {path + ": /b_dec", "no such dataset"});
  edit([](h5::File& f) {
    H5Ldelete(f.id(), "b_enc", H5P_DEFAULT);
    std::vector<double> v(10, 1.0);
    f.create_dataset("b_enc", h5::Type::Float64, {10}).write(v.data());
  });
  EXPECT_SAE_ERROR(saepipe::read_sae_checkpoint(path), ErrorKind::User, {path + ": /b_enc", "float64", "expected float32"});
  edit([](h5::File& f) {
    const float nan = NAN;
    f.open_dataset("b_dec").write_rows(2, 1, &nan);
  });
  EXPECT_SAE_ERROR(saepipe::read_sae_checkpoint(path), ErrorKind::Corrupt, {path + ": /b_dec", "nan", "element 2"});
  // A flipped byte inside W_dec's data.
  saepipe::SaeCheckpoint c = make_checkpoint(6, 10, 1);
  for (size_t i = 0; i < c.W_dec.size(); ++i) c.W_dec[i] = 5000.0f + float(i);
  saepipe::write_sae_checkpoint(path, c);
  std::string bytes = slurp(path);
  const float target = 5000.0f + 17.0f;
  const size_t at = bytes.find(std::string(reinterpret_cast<const char*>(&target), 4));
  ASSERT_NE(at, std::string::npos);
  bytes[at + 1] = char(bytes[at + 1] ^ 0x10);
  spit(path, bytes);
  EXPECT_SAE_ERROR(saepipe::read_sae_checkpoint(path), ErrorKind::Corrupt, {path + ": /W_dec", "checksum mismatch"});
}

// ============================== Layout ==============================

TEST(Layout, EmbeddedLayoutsAreWellFormed) {
  for (const auto& [file, names] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"activations.schema.json", {"shard", "activations.h5", "ground_truth.h5"}},
           {"sae.schema.json", {"sae.h5"}},
           {"stats.schema.json", {"features.h5", "examples.h5"}}}) {
    const json doc = json::parse(saepipe::embedded_resource(file));
    EXPECT_EQ(doc["version"], file == "stats.schema.json" ? 2 : 1) << file;
    for (const std::string& name : names) {
      const json layout = saepipe::embedded_h5_layout(file, name);
      EXPECT_TRUE(layout["datasets"].is_object()) << file << " " << name;
    }
  }
  EXPECT_SAE_ERROR(saepipe::embedded_h5_layout("sae.schema.json", "nope.h5"), ErrorKind::Internal, {"nope.h5"});
  // stats.schema.json documents summary.json.
  const json stats = json::parse(saepipe::embedded_resource("stats.schema.json"));
  for (const char* key : {"schema", "version", "n_tokens", "mse", "fvu", "l0", "dead_fraction"})
    EXPECT_TRUE(stats["properties"].contains(key)) << key;
  for (const char* key : {"mmcs", "frac_recovered_09", "n_true_features"}) EXPECT_TRUE(stats["properties"].contains(key)) << key;
}

namespace {
// A features.h5 as the stats stage writes it (through its writer), then optionally spoiled:
// /dead rewritten with another dtype, the d_sae attribute changed.
void write_features(const std::string& path, int64_t F, bool with_gt, h5::Type dead_type = h5::Type::UInt8,
                    int64_t d_sae_attr = -1) {
  saepipe::FeatureStats s;
  s.n_tokens = 300;
  s.d_sae = F;
  s.fire_count.assign(size_t(F), 3);
  s.density.assign(size_t(F), 0.01);
  s.log10_density.assign(size_t(F), -2.0);
  s.max_activation.assign(size_t(F), 1.5f);
  s.mean_activation.assign(size_t(F), 1.0f);
  s.dead.assign(size_t(F), 0);
  s.dense.assign(size_t(F), 0);
  s.ultralow.assign(size_t(F), 0);
  s.quantile_levels = {0.5, 0.9};
  s.quantiles.assign(size_t(F) * 2, 1.0f);
  s.hist_bins = 4;
  s.hist_counts.assign(size_t(F) * 4, 1);
  s.density_hist_edges = {-3, -2, -1, 0};
  s.density_hist_counts = {0, int64_t(F), 0};
  s.n_neighbours = 2;
  s.neighbour_index.assign(size_t(F) * 2, 0);
  s.neighbour_cosine.assign(size_t(F) * 2, 0.5f);
  if (with_gt) {
    s.gt_match_index.assign(size_t(F), 1);
    s.gt_match_cosine.assign(size_t(F), 0.9f);
  }
  saepipe::write_feature_stats(path, s, "");
  if (dead_type == h5::Type::UInt8 && d_sae_attr < 0) return;
  h5::File f = h5::open_file(path, true);
  if (dead_type != h5::Type::UInt8) {
    H5Ldelete(f.id(), "dead", H5P_DEFAULT);
    f.create_dataset("dead", dead_type, {F});
  }
  if (d_sae_attr >= 0) f.write_int_attribute("d_sae", d_sae_attr);
}
}  // namespace

TEST(Layout, GoodFilesPass) {
  TempDir dir;
  for (auto dtype : {saepipe::StoreDtype::Float32, saepipe::StoreDtype::Float16, saepipe::StoreDtype::BFloat16}) {
    TestStore st;
    st.dtype = dtype;
    const std::string store = dir / saepipe::to_string(dtype);
    st.write(store);
    saepipe::check_h5_layout(store + "/shard-0.h5", saepipe::embedded_h5_layout("activations.schema.json", "shard"));
    saepipe::check_h5_layout(store + "/activations.h5", saepipe::embedded_h5_layout("activations.schema.json", "activations.h5"));
  }
  saepipe::write_sae_checkpoint(dir / "sae.h5", make_checkpoint(6, 10, 2));
  saepipe::check_h5_layout(dir / "sae.h5", saepipe::embedded_h5_layout("sae.schema.json", "sae.h5"));
  write_features(dir / "features.h5", 10, false);
  saepipe::check_h5_layout(dir / "features.h5", saepipe::embedded_h5_layout("stats.schema.json", "features.h5"));
  write_features(dir / "features_gt.h5", 10, true);
  saepipe::check_h5_layout(dir / "features_gt.h5", saepipe::embedded_h5_layout("stats.schema.json", "features.h5"));
}

TEST(Layout, BadFilesAreNamed) {
  TempDir dir;
  const json sae = saepipe::embedded_h5_layout("sae.schema.json", "sae.h5");
  const json stats = saepipe::embedded_h5_layout("stats.schema.json", "features.h5");
  const std::string path = dir / "sae.h5";
  auto edit = [&](const std::function<void(h5::File&)>& fn) {
    saepipe::write_sae_checkpoint(path, make_checkpoint(6, 10, 1));
    h5::File f = h5::open_file(path, true);
    fn(f);
    f.close();
  };
  auto replace = [](h5::File& f, const std::string& name, h5::Type type, std::vector<int64_t> dims) {
    H5Ldelete(f.id(), name.c_str(), H5P_DEFAULT);
    f.create_dataset(name, type, dims);
  };
  edit([&](h5::File& f) { replace(f, "W_enc", h5::Type::Float32, {10, 6}); });
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(path, sae), ErrorKind::User,
                   {path + ": /W_enc", "dim 0 (d_in) is 10 but d_in is 6 (from attribute 'd_in')"});
  edit([&](h5::File& f) { replace(f, "b_enc", h5::Type::Float32, {11}); });
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(path, sae), ErrorKind::User, {path + ": /b_enc", "d_sae"});
  edit([&](h5::File& f) { replace(f, "W_dec", h5::Type::Float32, {10}); });
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(path, sae), ErrorKind::User, {path + ": /W_dec", "rank 1"});
  edit([&](h5::File& f) { replace(f, "threshold", h5::Type::BFloat16, {10}); });
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(path, sae), ErrorKind::User, {path + ": /threshold", "dtype bfloat16, expected float32"});
  edit([&](h5::File& f) { H5Ldelete(f.id(), "b_dec", H5P_DEFAULT); });
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(path, sae), ErrorKind::User, {path + ": /b_dec", "missing"});
  edit([&](h5::File& f) { H5Adelete(f.id(), "tokens_seen"); });
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(path, sae), ErrorKind::User, {path, "'tokens_seen' is missing"});
  edit([&](h5::File& f) { f.write_string_attribute("k", "four"); });
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(path, sae), ErrorKind::User, {path, "'k' is a string, expected int64"});
  edit([&](h5::File& f) { f.write_string_attribute("architecture", "mlp"); });
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(path, sae), ErrorKind::User, {path, "'architecture' is \"mlp\"", "topk"});
  edit([&](h5::File& f) { f.write_string_attribute("schema", "saepipe.stats"); });
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(path, sae), ErrorKind::User, {path, "'saepipe.stats', expected 'saepipe.sae'"});
  edit([&](h5::File& f) { f.write_int_attribute("version", 2); });
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(path, sae), ErrorKind::User, {path, "version 2 is not supported"});
  // Stats: a wrong dtype, an inconsistent d_sae, an optional dataset of the wrong shape.
  write_features(dir / "f1.h5", 10, false, h5::Type::Int64);
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(dir / "f1.h5", stats), ErrorKind::User, {"f1.h5: /dead", "dtype int64, expected uint8"});
  write_features(dir / "f2.h5", 10, true, h5::Type::UInt8, 12);
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(dir / "f2.h5", stats), ErrorKind::User, {"f2.h5: /", "is 10 but d_sae is 12"});
  {
    write_features(dir / "f3.h5", 10, false);
    h5::File f = h5::open_file(dir / "f3.h5", true);
    f.create_dataset("gt_match_cosine", h5::Type::Float32, {9});
  }
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(dir / "f3.h5", stats), ErrorKind::User, {"f3.h5: /gt_match_cosine", "d_sae"});
  // A shard stored without checksums, and one without activations.
  const json shard = saepipe::embedded_h5_layout("activations.schema.json", "shard");
  {
    h5::File f = h5::create_file(dir / "s.h5");
    f.create_dataset("activations/h", h5::Type::Float32, {4, 2}, {{}, false});
    for (const char* n : {"tokens", "position"}) f.create_dataset(n, h5::Type::Int32, {4});
    f.create_dataset("sequence", h5::Type::Int64, {4});
    f.write_string_attribute("schema", "saepipe.activations.shard");
    f.write_int_attribute("version", 1);
    for (const char* n : {"first_token", "n_tokens", "d_model", "complete"}) f.write_int_attribute(n, n[0] == 'n' ? 4 : n[0] == 'd' ? 2 : 1);
    f.write_string_attribute("dtype", "float32");
    f.write_string_attribute("fingerprint", "x");
  }
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(dir / "s.h5", shard), ErrorKind::User, {"s.h5: /activations/h", "Fletcher32"});
  {
    h5::File f = h5::open_file(dir / "s.h5", true);
    H5Ldelete(f.id(), "activations/h", H5P_DEFAULT);
  }
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(dir / "s.h5", shard), ErrorKind::User, {"s.h5: /activations", "no datasets"});
  EXPECT_SAE_ERROR(saepipe::check_h5_layout(dir / "none.h5", shard), ErrorKind::User, {"none.h5", "no such file"});
}

// ============================== h5py ==============================

// Files written here are read by h5py (an independent HDF5 reader) in tests/python/check_h5py_reads.py.
TEST(H5py, ReadsOurFiles) {
  // scripts/setup.sh installs python3-h5py and python3-numpy: without them this fails, not skips.
  ASSERT_EQ(std::system("/usr/bin/python3 -c 'import h5py, numpy' >/dev/null 2>&1"), 0) << "/usr/bin/python3 lacks h5py or numpy";
  TempDir dir;
  for (auto dtype : {saepipe::StoreDtype::Float32, saepipe::StoreDtype::Float16, saepipe::StoreDtype::BFloat16}) {
    TestStore st;
    st.dtype = dtype;
    const std::string store = dir / saepipe::to_string(dtype);
    st.write(store);
    for (size_t h = 0; h < st.hooks.size(); ++h)
      write_npy(store + "/original_" + st.hooks[h] + ".npy", st.original[h], {st.n_tokens(), st.d_model});
    write_npy(store + "/tokens.npy", st.tokens, {st.n_tokens()});
    write_npy(store + "/sequence.npy", st.sequence, {st.n_tokens()});
    write_npy(store + "/position.npy", st.position, {st.n_tokens()});
  }
  const saepipe::SaeCheckpoint c = make_checkpoint(6, 10, 3);
  fs::create_directories(dir / "sae");
  saepipe::write_sae_checkpoint(dir / "sae/sae.h5", c);
  write_npy(dir / "sae/W_enc.npy", c.W_enc, {6, 10});
  write_npy(dir / "sae/b_enc.npy", c.b_enc, {10});
  write_npy(dir / "sae/W_dec.npy", c.W_dec, {10, 6});
  write_npy(dir / "sae/b_dec.npy", c.b_dec, {6});
  write_npy(dir / "sae/threshold.npy", c.threshold, {10});
  const std::string cmd = "/usr/bin/python3 " SAEPIPE_SOURCE_DIR "/tests/python/check_h5py_reads.py " + dir.path();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}
