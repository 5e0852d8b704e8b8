// The activation store on the HDF5 layer: round trips across shards, manifests, atomic
// writes, corruption detection, the virtual dataset, reader errors.
#include "tests/unit/h5_test_util.hpp"

TEST(StoreDtype, ParseAndName) {
  for (auto d : {saepipe::StoreDtype::Float32, saepipe::StoreDtype::Float16, saepipe::StoreDtype::BFloat16})
    EXPECT_EQ(saepipe::parse_store_dtype(saepipe::to_string(d)), d);
  EXPECT_SAE_ERROR(saepipe::parse_store_dtype("fp8"), ErrorKind::User, {"'fp8'", "bfloat16"});
}

class StoreRoundTrip : public ::testing::TestWithParam<saepipe::StoreDtype> {};

TEST_P(StoreRoundTrip, RowsAcrossShardBoundaries) {
  TempDir dir;
  TestStore st;
  st.dtype = GetParam();
  st.write(dir.path());
  saepipe::StoreReader reader(dir.path(), "");
  EXPECT_EQ(reader.hook(), st.hooks[0]);
  EXPECT_EQ(reader.n_tokens(), 200);
  EXPECT_EQ(reader.d_model(), st.d_model);
  EXPECT_EQ(reader.manifest().dtype, saepipe::to_string(st.dtype));
  const int64_t D = st.d_model;
  // Ranges inside one shard, across one boundary, across two, the whole store, the last row.
  for (auto [first, count] : std::vector<std::pair<int64_t, int64_t>>{{0, 5}, {65, 10}, {60, 100}, {0, 200}, {199, 1}, {70, 50}}) {
    for (size_t h = 0; h < st.hooks.size(); ++h) {
      saepipe::StoreReader r(dir.path(), st.hooks[h]);
      std::vector<float> out(size_t(count * D));
      r.read_rows(first, count, out.data());
      for (int64_t i = 0; i < count; ++i)
        for (int64_t c = 0; c < D; ++c)
          ASSERT_EQ(out[size_t(i * D + c)], st.expected(h, first + i, c)) << "hook " << h << " row " << first + i;
    }
    std::vector<int64_t> seq(static_cast<size_t>(count));
    std::vector<int32_t> tok(static_cast<size_t>(count)), pos(static_cast<size_t>(count));
    reader.read_sequence(first, count, seq.data());
    reader.read_tokens(first, count, tok.data());
    reader.read_position(first, count, pos.data());
    for (int64_t i = 0; i < count; ++i) {
      ASSERT_EQ(seq[i], st.sequence[first + i]);
      ASSERT_EQ(tok[i], st.tokens[first + i]);
      ASSERT_EQ(pos[i], st.position[first + i]);
    }
  }
  std::vector<float> out(10 * D);
  EXPECT_SAE_ERROR(reader.read_rows(195, 10, out.data()), ErrorKind::Internal, {"out of range"});
  // The shard stores the dtype exactly as asked.
  h5::File shard = h5::open_file(dir / "shard-1.h5");
  EXPECT_EQ(h5::to_string(shard.open_dataset("activations/" + st.hooks[1]).type()), saepipe::to_string(st.dtype));
  EXPECT_EQ(shard.read_string_attribute("schema"), "saepipe.activations.shard");
  EXPECT_EQ(shard.read_int_attribute("first_token"), 70);
  EXPECT_EQ(shard.read_int_attribute("complete"), 1);
}

INSTANTIATE_TEST_SUITE_P(Store, StoreRoundTrip,
                         ::testing::Values(saepipe::StoreDtype::Float32, saepipe::StoreDtype::Float16,
                                           saepipe::StoreDtype::BFloat16),
                         [](const auto& p) { return saepipe::to_string(p.param); });

TEST(Store, ManifestRoundTripAndJsonSchema) {
  TempDir dir;
  TestStore st;
  st.write(dir.path());
  const saepipe::StoreManifest m = saepipe::StoreManifest::read(dir.path());
  EXPECT_EQ(m.version, 1);
  EXPECT_EQ(m.hooks, st.hooks);
  EXPECT_EQ(m.n_tokens, 200);
  EXPECT_EQ(m.context, 10);
  EXPECT_EQ(m.source["kind"], "test");
  ASSERT_EQ(m.shards.size(), 3u);
  EXPECT_EQ(m.shards[2].first_token, 120);
  EXPECT_EQ(m.shards[2].n_tokens, 80);
  EXPECT_EQ(m.shards[1].rank, 1);
  EXPECT_FALSE(fs::exists(dir / "manifest.json.tmp"));
  // What we write agrees with the JSON Schema we publish.
  const json schema = json::parse(saepipe::embedded_resource("activations.schema.json"));
  const json written = json::parse(slurp(dir / "manifest.json"));
  for (const auto& key : schema["required"]) EXPECT_TRUE(written.contains(key.get<std::string>())) << key;
  for (const auto& [key, v] : written.items()) EXPECT_TRUE(schema["properties"].contains(key)) << key;
  const json& shard_schema = schema["properties"]["shards"]["items"];
  for (const auto& [key, v] : written["shards"][0].items()) EXPECT_TRUE(shard_schema["properties"].contains(key)) << key;
  for (const auto& key : shard_schema["required"]) EXPECT_TRUE(written["shards"][0].contains(key.get<std::string>()));
  // first_token may be left out (DESIGN lists path, n_tokens, rank): it is the running sum.
  json minimal = written;
  for (auto& s : minimal["shards"]) s.erase("first_token");
  spit(dir / "manifest.json", minimal.dump());
  EXPECT_EQ(saepipe::StoreManifest::read(dir.path()).shards[2].first_token, 120);
}

TEST(Store, ManifestValidationNamesFileAndField) {
  TempDir dir;
  const std::string file = dir / "manifest.json";
  EXPECT_SAE_ERROR(saepipe::StoreManifest::read(dir.path()), ErrorKind::User,
                   {file + ": no activation store here (manifest.json missing)"});
  TestStore st;
  st.write(dir.path());
  const json good = json::parse(slurp(file));
  auto expect_bad = [&](const std::function<void(json&)>& mutate, const std::string& field) {
    json j = good;
    mutate(j);
    spit(file, j.dump());
    SCOPED_TRACE(field);
    expect_error([&] { saepipe::StoreManifest::read(dir.path()); }, ErrorKind::User, {file, field});
  };
  expect_bad([](json& j) { j["schema"] = "saepipe.sae"; }, "schema");
  expect_bad([](json& j) { j["version"] = 2; }, "version: 2 is not supported");
  expect_bad([](json& j) { j.erase("d_model"); }, "d_model: missing");
  expect_bad([](json& j) { j["d_model"] = "64"; }, "d_model: must be an integer");
  expect_bad([](json& j) { j["d_model"] = 64.5; }, "d_model: must be an integer");
  expect_bad([](json& j) { j["dtype"] = "int8"; }, "dtype");
  expect_bad([](json& j) { j["hooks"] = json::array(); }, "hooks");
  expect_bad([](json& j) { j["hooks"] = json::array({"a", "a"}); }, "hooks[1]");
  expect_bad([](json& j) { j["hooks"] = json::array({"a/b"}); }, "hooks[0]");
  expect_bad([](json& j) { j.erase("context"); }, "context: missing");
  expect_bad([](json& j) { j["source"] = 3; }, "source: must be an object");
  expect_bad([](json& j) { j["shards"][1].erase("path"); }, "shards[1].path: missing");
  expect_bad([](json& j) { j["shards"][2]["rank"] = -1; }, "shards[2].rank");
  expect_bad([](json& j) { j["shards"][1]["first_token"] = 71; }, "shards[1].first_token: is 71, expected 70");
  expect_bad([](json& j) { j["shards"][0]["n_tokens"] = 69; }, "shards[1].first_token");
  expect_bad([](json& j) { j["n_tokens"] = 201; }, "shards: cover 200 tokens but n_tokens is 201");
  expect_bad([](json& j) { j["shards"][2]["path"] = "shard-0.h5"; }, "shards[2].path");
  spit(file, "{\"schema\": \"saepipe.activations\",");
  EXPECT_SAE_ERROR(saepipe::StoreManifest::read(dir.path()), ErrorKind::User, {file, "not valid JSON"});
  // A number JSON can spell but no double holds is a user error too (found by fuzz_manifest).
  spit(file, "{\"d_model\": 9E99999999999999999999}");
  EXPECT_SAE_ERROR(saepipe::StoreManifest::read(dir.path()), ErrorKind::User, {file, "not valid JSON"});
  spit(file, "[1, 2]");
  EXPECT_SAE_ERROR(saepipe::StoreManifest::read(dir.path()), ErrorKind::User, {file, "not a JSON object"});
}

TEST(Store, ShardCompleteSemantics) {
  TempDir dir;
  TestStore st;
  st.write(dir.path());
  const std::string shard = dir / "shard-1.h5";
  EXPECT_FALSE(saepipe::shard_complete(dir / "shard-9.h5", "fp-1", 0, 10));
  EXPECT_TRUE(saepipe::shard_complete(shard, "fp-1", 70, 50));
  EXPECT_SAE_ERROR(saepipe::shard_complete(shard, "fp-2", 70, 50), ErrorKind::User,
                   {shard, "written by a different job; remove the run directory or change run.name"});
  EXPECT_SAE_ERROR(saepipe::shard_complete(shard, "fp-1", 70, 60), ErrorKind::User, {shard, "different job"});
  EXPECT_SAE_ERROR(saepipe::shard_complete(shard, "fp-1", 0, 50), ErrorKind::User, {shard, "different job"});
  // Truncated, foreign or unfinished files are rewritten, not trusted.
  const std::string bytes = slurp(shard);
  spit(shard, bytes.substr(0, bytes.size() / 2));
  EXPECT_FALSE(saepipe::shard_complete(shard, "fp-1", 70, 50));
  spit(shard, "garbage");
  EXPECT_FALSE(saepipe::shard_complete(shard, "fp-1", 70, 50));
  {
    h5::File f = h5::create_file(shard);
    f.write_string_attribute("fingerprint", "fp-1");
  }
  EXPECT_FALSE(saepipe::shard_complete(shard, "fp-1", 70, 50));
  {
    h5::File f = h5::open_file(shard, true);
    f.write_int_attribute("complete", 0);
  }
  EXPECT_FALSE(saepipe::shard_complete(shard, "fp-1", 70, 50));
}

TEST(Store, WritesAreAtomic) {
  TempDir dir;
  TestStore st;
  st.write(dir / "good");
  const saepipe::ShardData data = st.shard_data(0);
  // A failure half way (the second hook's dataset cannot be created): neither name is left.
  const std::string path = dir / "shard-x.h5";
  EXPECT_SAE_ERROR(saepipe::write_shard(path, saepipe::ShardData{data.first_token, data.n_tokens, {data.activations[0], data.activations[0]}, data.tokens, data.position, data.sequence},
                                        {"same", "same"}, st.d_model, st.dtype, "fp"),
                   ErrorKind::Internal, {path + ".tmp", "/activations/same"});
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  // The rename fails (a directory holds the final name): the temporary is removed.
  fs::create_directories(dir / "blocked.h5/inside");
  EXPECT_SAE_ERROR(saepipe::write_shard(dir / "blocked.h5", data, st.hooks, st.d_model, st.dtype, "fp"), ErrorKind::User,
                   {dir / "blocked.h5", "cannot rename"});
  EXPECT_TRUE(fs::is_directory(dir / "blocked.h5"));
  EXPECT_FALSE(fs::exists(dir / "blocked.h5.tmp"));
  // A temporary left by a killed run is simply overwritten.
  spit(path + ".tmp", "half a shard");
  saepipe::write_shard(path, data, st.hooks, st.d_model, st.dtype, "fp");
  EXPECT_TRUE(saepipe::shard_complete(path, "fp", 0, 70));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  // A directory we may not write to (permissions do not bind root: then only the above apply).
  if (::geteuid() != 0) {
    fs::create_directories(dir / "ro");
    fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_SAE_ERROR(saepipe::write_shard(dir / "ro/s.h5", data, st.hooks, st.d_model, st.dtype, "fp"), ErrorKind::User,
                     {"ro/s.h5.tmp", "cannot create"});
    EXPECT_SAE_ERROR(saepipe::write_sae_checkpoint(dir / "ro/sae.h5", make_checkpoint(4, 8, 1)), ErrorKind::User,
                     {"ro/sae.h5.tmp"});
    EXPECT_FALSE(fs::exists(dir / "ro/s.h5"));
    EXPECT_FALSE(fs::exists(dir / "ro/sae.h5"));
  }
}

TEST(Store, NonFiniteValueIsCorruptWithGlobalRow) {
  for (float bad : {NAN, INFINITY}) {
    TempDir dir;
    TestStore st;
    st.dtype = saepipe::StoreDtype::BFloat16;
    st.original.push_back(random_values(200 * 24, 1));
    st.original.push_back(random_values(200 * 24, 2));
    st.original[0][size_t(157 * 24 + 3)] = bad;  // shard 2 (first token 120), row 37
    st.write(dir.path());
    saepipe::StoreReader r(dir.path(), st.hooks[0]);
    std::vector<float> out(200 * 24);
    r.read_rows(0, 157, out.data());  // up to the bad row: fine
    const std::string msg = expect_error([&] { r.read_rows(100, 80, out.data()); }, ErrorKind::Corrupt,
                                         {dir / "shard-2.h5", "/activations/" + st.hooks[0], "global row 157", "column 3"});
    EXPECT_NE(msg.find(std::isnan(bad) ? "nan" : "inf"), std::string::npos) << msg;
    saepipe::StoreReader other(dir.path(), st.hooks[1]);  // the other hook is clean
    other.read_rows(0, 200, out.data());
  }
}

TEST(Store, FlippedByteInChunkIsDetected) {
  TempDir dir;
  TestStore st;
  st.hooks = {"h"};
  st.shard_sizes = {40, 40};
  st.d_model = 8;
  std::vector<float> pattern(80 * 8);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = 1000.0f + float(i);  // unique, exact
  st.original = {pattern};
  st.write(dir.path());
  // Find row 43, column 5 (shard 1, row 3) in the shard's bytes and flip one bit of it.
  const std::string shard = dir / "shard-1.h5";
  std::string bytes = slurp(shard);
  const float target = 1000.0f + float(43 * 8 + 5);
  const std::string needle(reinterpret_cast<const char*>(&target), 4);
  const size_t at = bytes.find(needle);
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(bytes.find(needle, at + 1), std::string::npos) << "pattern must be unique";
  bytes[at] = char(bytes[at] ^ 0x01);
  spit(shard, bytes);
  saepipe::StoreReader r(dir.path(), "");
  std::vector<float> out(80 * 8);
  r.read_rows(0, 40, out.data());  // shard 0 is intact
  expect_error([&] { r.read_rows(30, 20, out.data()); }, ErrorKind::Corrupt,
               {shard, "/activations/h", "read failed (checksum mismatch or corrupt data) at rows 40..49"});
}

TEST(Store, VirtualDatasetEqualsShards) {
  TempDir dir;
  TestStore st;
  st.dtype = saepipe::StoreDtype::Float16;
  st.write(dir / "a");
  // Moved elsewhere, the virtual file still finds its shards (source names are relative).
  fs::rename(dir / "a", dir / "moved");
  const std::string path = dir / "moved/activations.h5";
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  saepipe::StoreReader reader(dir / "moved", st.hooks[1]);
  const int64_t N = reader.n_tokens(), D = reader.d_model();
  std::vector<float> expect(size_t(N * D)), got(size_t(N * D));
  reader.read_rows(0, N, expect.data());
  const hid_t ds = H5Dopen2(file, ("/activations/" + st.hooks[1]).c_str(), H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  const hid_t space = H5Dget_space(ds);
  hsize_t dims[2] = {0, 0};
  ASSERT_EQ(H5Sget_simple_extent_ndims(space), 2);
  H5Sget_simple_extent_dims(space, dims, nullptr);
  EXPECT_EQ(dims[0], hsize_t(N));
  EXPECT_EQ(dims[1], hsize_t(D));
  ASSERT_GE(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, got.data()), 0);
  EXPECT_EQ(got, expect);
  std::vector<int64_t> seq(static_cast<size_t>(N)), seq_expect(static_cast<size_t>(N));
  const hid_t sds = H5Dopen2(file, "/sequence", H5P_DEFAULT);
  ASSERT_GE(H5Dread(sds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, seq.data()), 0);
  reader.read_sequence(0, N, seq_expect.data());
  EXPECT_EQ(seq, seq_expect);
  H5Dclose(sds);
  H5Sclose(space);
  H5Dclose(ds);
  H5Fclose(file);
  h5::File f = h5::open_file(path);
  EXPECT_TRUE(f.open_dataset("activations/" + st.hooks[0]).is_virtual());
  EXPECT_EQ(f.open_dataset("tokens").type(), h5::Type::Int32);
  EXPECT_EQ(f.read_string_attribute("dtype"), "float16");
}

// A shard gone missing reads through the virtual file as NaN rows (and -1 tokens), not zeros.
TEST(Store, VirtualDatasetMissingShardReadsAsNaN) {
  for (const auto dtype : {saepipe::StoreDtype::Float32, saepipe::StoreDtype::Float16, saepipe::StoreDtype::BFloat16}) {
    TempDir dir;
    TestStore st;
    st.dtype = dtype;
    st.write(dir.path());
    saepipe::StoreReader reader(dir.path(), st.hooks[0]);
    const int64_t N = reader.n_tokens(), D = reader.d_model();
    std::vector<float> expect(size_t(N * D)), got(size_t(N * D));
    std::vector<int32_t> tokens(static_cast<size_t>(N)), tokens_expect(static_cast<size_t>(N));
    reader.read_rows(0, N, expect.data());
    reader.read_tokens(0, N, tokens_expect.data());
    const saepipe::ShardInfo lost = reader.manifest().shards[1];
    fs::remove(dir / lost.path);
    h5::File f = h5::open_file(dir / "activations.h5");
    ASSERT_GE(H5Dread(f.open_dataset("activations/" + st.hooks[0]).id(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                      got.data()), 0);
    ASSERT_GE(H5Dread(f.open_dataset("tokens").id(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens.data()), 0);
    for (int64_t r = 0; r < N; ++r) {
      const bool in_lost = r >= lost.first_token && r < lost.first_token + lost.n_tokens;
      EXPECT_EQ(tokens[size_t(r)], in_lost ? -1 : tokens_expect[size_t(r)]) << "row " << r;
      for (int64_t c = 0; c < D; ++c) {
        const float v = got[size_t(r * D + c)];
        if (in_lost)
          ASSERT_TRUE(std::isnan(v)) << saepipe::to_string(dtype) << " row " << r << " col " << c << ": " << v;
        else
          ASSERT_EQ(v, expect[size_t(r * D + c)]) << saepipe::to_string(dtype) << " row " << r;
      }
    }
  }
}

TEST(Store, ReaderErrorsNameTheProblem) {
  TempDir dir;
  TestStore st;
  st.write(dir.path());
  EXPECT_SAE_ERROR(saepipe::StoreReader(dir.path(), "blocks.9.hook_resid_post"), ErrorKind::User,
                   {dir / "manifest.json", "no hook 'blocks.9.hook_resid_post'", st.hooks[0], st.hooks[1]});
  std::vector<float> out(200 * 24);
  {
    fs::rename(dir / "shard-1.h5", dir / "away.h5");
    saepipe::StoreReader r(dir.path(), "");
    r.read_rows(0, 70, out.data());
    EXPECT_SAE_ERROR(r.read_rows(60, 20, out.data()), ErrorKind::User, {dir / "shard-1.h5", "shard missing"});
    spit(dir / "shard-1.h5", "not hdf5");
    EXPECT_SAE_ERROR(r.read_rows(60, 20, out.data()), ErrorKind::User, {dir / "shard-1.h5", "not an HDF5 file"});
    fs::rename(dir / "away.h5", dir / "shard-1.h5");
    r.read_rows(60, 20, out.data());
  }
  // The manifest says shard 0 has 60 tokens and shard 1 has 60: the files disagree.
  json j = json::parse(slurp(dir / "manifest.json"));
  j["shards"][0]["n_tokens"] = 60;
  j["shards"][1]["first_token"] = 60;
  j["shards"][1]["n_tokens"] = 60;
  spit(dir / "manifest.json", j.dump());
  {
    saepipe::StoreReader r(dir.path(), "");
    EXPECT_SAE_ERROR(r.read_rows(0, 10, out.data()), ErrorKind::User,
                     {dir / "shard-0.h5", "/activations/" + st.hooks[0], "shape [70, 24]", "[60, 24]"});
  }
  j["shards"][0]["n_tokens"] = 70;
  j["shards"][1]["first_token"] = 70;
  j["shards"][1]["n_tokens"] = 50;
  j["d_model"] = 32;
  spit(dir / "manifest.json", j.dump());
  {
    saepipe::StoreReader r(dir.path(), "");
    EXPECT_SAE_ERROR(r.read_rows(0, 10, out.data()), ErrorKind::User, {"shard-0.h5", "[70, 24]", "[70, 32]"});
  }
  j["d_model"] = 24;
  j["dtype"] = "bfloat16";
  spit(dir / "manifest.json", j.dump());
  {
    saepipe::StoreReader r(dir.path(), "");
    EXPECT_SAE_ERROR(r.read_rows(0, 10, out.data()), ErrorKind::User, {"shard-0.h5", "stored as float32", "bfloat16"});
  }
}

TEST(Store, ManyShardsStayBoundedAndCorrect) {
  TempDir dir;
  TestStore st;
  st.hooks = {"h"};
  st.d_model = 4;
  st.shard_sizes.assign(45, 3);  // more shards than the reader keeps open
  st.write(dir.path());
  saepipe::StoreReader r(dir.path(), "h");
  std::mt19937 rng(5);
  std::vector<float> out(135 * 4);
  for (int i = 0; i < 300; ++i) {
    const int64_t first = int64_t(rng() % 135), count = 1 + int64_t(rng() % (135 - first));
    r.read_rows(first, std::min<int64_t>(count, 7), out.data());
    for (int64_t k = 0; k < std::min<int64_t>(count, 7) * 4; ++k) ASSERT_EQ(out[k], st.expected(0, first + k / 4, k % 4));
  }
  r.read_rows(0, 135, out.data());
  for (int64_t k = 0; k < 135 * 4; ++k) ASSERT_EQ(out[k], st.expected(0, k / 4, k % 4));
}

TEST(Store, GroundTruthRoundTrip) {
  TempDir dir;
  EXPECT_FALSE(saepipe::has_ground_truth(dir.path()));
  const std::vector<float> g = random_values(12 * 5, 9);
  saepipe::write_ground_truth(dir.path(), g.data(), 12, 5);
  EXPECT_TRUE(saepipe::has_ground_truth(dir.path()));
  EXPECT_FALSE(fs::exists(dir / "ground_truth.h5.tmp"));
  int64_t n = 0, d = 0;
  EXPECT_EQ(saepipe::read_ground_truth(dir.path(), &n, &d), g);
  EXPECT_EQ(n, 12);
  EXPECT_EQ(d, 5);
  saepipe::check_h5_layout(dir / "ground_truth.h5", saepipe::embedded_h5_layout("activations.schema.json", "ground_truth.h5"));
}

// Several hooks, a linear map and a hierarchy: every dataset reads back, a hook's directions by
// its name (the first hook's also as /features), and the file has the schema's layout.
TEST(Store, GroundTruthOfSeveralHooksRoundTrip) {
  TempDir dir;
  saepipe::GroundTruth t;
  t.n_features = 6;
  t.d_model = 3;
  t.hooks = {"blocks.1.hook_resid_mid", "blocks.1.hook_mlp_out"};
  t.features = {random_values(18, 1), random_values(18, 2)};
  t.linear = {{}, random_values(9, 3)};
  t.probability = {0.5, 0.25, 0.125, 0.1, 0.1, 0.05};
  t.parent = {-1, -1, 0, 0, 1, 1};
  saepipe::write_ground_truth(dir.path(), t);
  int64_t n = 0, d = 0;
  EXPECT_EQ(saepipe::read_ground_truth(dir.path(), &n, &d), t.features[0]);
  EXPECT_EQ(saepipe::read_ground_truth(dir.path(), "blocks.1.hook_mlp_out", &n, &d), t.features[1]);
  EXPECT_EQ(saepipe::read_ground_truth(dir.path(), "blocks.1.hook_resid_mid", &n, &d), t.features[0]);
  EXPECT_EQ(saepipe::read_ground_truth(dir.path(), "not.a.hook", &n, &d), t.features[0]);  // a one-hook store's way
  EXPECT_EQ(n, 6);
  EXPECT_EQ(d, 3);
  EXPECT_EQ(saepipe::read_ground_truth_parents(dir.path()), t.parent);
  saepipe::check_h5_layout(dir / "ground_truth.h5", saepipe::embedded_h5_layout("activations.schema.json", "ground_truth.h5"));
  {
    saepipe::h5::File f = saepipe::h5::open_file(dir / "ground_truth.h5");
    EXPECT_EQ(f.open_dataset("hook_linear/blocks.1.hook_mlp_out").read_all<float>(), t.linear[1]);
    EXPECT_FALSE(f.exists("hook_linear/blocks.1.hook_resid_mid"));
    EXPECT_EQ(f.open_dataset("probability").read_all<double>(), t.probability);
  }
  // No hierarchy: no /parent, and read_ground_truth_parents says so.
  saepipe::write_ground_truth(dir.path(), t.features[0].data(), 6, 3);
  EXPECT_TRUE(saepipe::read_ground_truth_parents(dir.path()).empty());
}

TEST(Store, Float16OverflowInShardIsUserError) {
  TempDir dir;
  TestStore st;
  st.dtype = saepipe::StoreDtype::Float16;
  st.original.push_back(random_values(200 * 24, 1));
  st.original.push_back(random_values(200 * 24, 2));
  st.original[1][5 * 24] = 1e5f;
  EXPECT_SAE_ERROR(st.write(dir.path()), ErrorKind::User, {"shard-0.h5", "overflows float16", "row 5"});
  EXPECT_FALSE(fs::exists(dir / "shard-0.h5"));
}

// ============================== Checkpoint ==============================
