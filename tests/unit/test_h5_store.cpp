// HDF5 layer and activation store: round trips, 16-bit conversions, manifests, atomic
// writes, corruption detection, the virtual dataset.
#include "tests/unit/h5_test_util.hpp"

// ============================== H5 ==============================

TEST(H5Conversion, BFloat16RoundsToNearestEven) {
  std::mt19937 rng(1);
  std::vector<float> xs = {0.0f, -0.0f, 1.0f, -1.0f, 1e-40f, -1e-45f, 3.0e38f, 3.3961e38f, 3.4e38f,
                           std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                           std::numeric_limits<float>::min()};
  for (int i = 0; i < 200000; ++i) xs.push_back(std::bit_cast<float>(uint32_t(rng())));
  for (int i = 0; i < 20000; ++i) {  // exact midpoints between neighbours: ties to even
    const uint16_t b = uint16_t(rng() % 0x7f7f);
    xs.push_back(float((kBF16ref.decode(b) + kBF16ref.decode(uint16_t(b + 1))) / 2));
  }
  for (float x : xs) {
    if (std::isnan(x)) continue;
    ASSERT_EQ(h5::float_to_bf16(x), kBF16ref.round(x)) << "x = " << x << " bits " << std::bit_cast<uint32_t>(x);
  }
  for (float nan : {std::nanf(""), -std::nanf(""), std::bit_cast<float>(0x7f800001u), std::bit_cast<float>(0xff800001u)}) {
    const uint16_t b = h5::float_to_bf16(nan);
    EXPECT_TRUE(std::isnan(h5::bf16_to_float(b)));
    EXPECT_EQ(b & 0x8000, std::signbit(nan) ? 0x8000 : 0);
  }
  EXPECT_EQ(h5::float_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(h5::float_to_bf16(-INFINITY), 0xff80);
}

TEST(H5Conversion, Float16RoundsToNearestEven) {
  std::mt19937 rng(2);
  std::vector<float> xs = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 1e6f, 0x1p-24f, 0x1p-25f,
                           0x1.0p-25f * 1.0000001f, 0x1p-26f, 0x1p-14f, 0x1.ff8p-15f, 6.1e-5f};
  for (int i = 0; i < 200000; ++i) {  // random floats concentrated on the half range
    const float m = std::bit_cast<float>((uint32_t(rng()) & 0x807fffffu) | (uint32_t(100 + rng() % 50) << 23));
    xs.push_back(m);
  }
  for (int i = 0; i < 20000; ++i) {  // exact midpoints, including between subnormals
    const uint16_t b = uint16_t(rng() % 0x7bff);
    xs.push_back(float((kF16ref.decode(b) + kF16ref.decode(uint16_t(b + 1))) / 2));
  }
  for (float x : xs) ASSERT_EQ(h5::float_to_f16(x), kF16ref.round(x)) << "x = " << x;
  for (float nan : {std::nanf(""), -std::nanf(""), std::bit_cast<float>(0x7f800001u)}) {
    const uint16_t b = h5::float_to_f16(nan);
    EXPECT_TRUE(std::isnan(h5::f16_to_float(b)));
    EXPECT_EQ(b & 0x8000, std::signbit(nan) ? 0x8000 : 0);
  }
  EXPECT_EQ(h5::float_to_f16(INFINITY), 0x7c00);
}

TEST(H5Conversion, WideningIsExactForEveryBitPattern) {
  for (uint32_t b = 0; b < 65536; ++b) {
    ASSERT_TRUE(same_float(h5::f16_to_float(uint16_t(b)), float(kF16ref.decode(uint16_t(b))))) << b;
    ASSERT_TRUE(same_float(h5::bf16_to_float(uint16_t(b)), float(kBF16ref.decode(uint16_t(b))))) << b;
  }
}

// Our raw-bit read path and HDF5's own conversion to NATIVE_FLOAT agree on all 65536 patterns.
TEST(H5Conversion, SixteenBitReadsMatchHdf5Conversion) {
  TempDir dir;
  std::vector<uint16_t> all(65536);
  for (uint32_t b = 0; b < 65536; ++b) all[b] = uint16_t(b);
  for (h5::Type type : {h5::Type::Float16, h5::Type::BFloat16}) {
    const std::string path = dir / (h5::to_string(type) + ".h5");
    write_raw16(path, type, all);
    h5::File f = h5::open_file(path);
    h5::Dataset ds = f.open_dataset("x");
    EXPECT_EQ(ds.type(), type);
    std::vector<float> ours = ds.read_all<float>(), theirs(65536);
    ASSERT_GE(H5Dread(ds.id(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, theirs.data()), 0);
    for (uint32_t b = 0; b < 65536; ++b) ASSERT_TRUE(same_float(ours[b], theirs[b])) << h5::to_string(type) << " " << b;
  }
}

TEST(H5, RoundTripEveryType) {
  TempDir dir;
  const int64_t R = 37, C = 5;
  const std::vector<float> fv = random_values(size_t(R * C), 3);
  std::vector<double> dv(fv.begin(), fv.end());
  std::vector<int32_t> iv(size_t(R * C));
  std::vector<int64_t> lv(size_t(R * C));
  std::vector<uint8_t> uv(size_t(R * C));
  for (size_t i = 0; i < iv.size(); ++i) {
    iv[i] = int32_t(i * 2654435761u);
    lv[i] = int64_t(i) * 1000000007LL - (int64_t(1) << 40);
    uv[i] = uint8_t(i * 13);
  }
  const std::string path = dir / "types.h5";
  {
    h5::File f = h5::create_file(path);
    for (h5::Type t : {h5::Type::Float32, h5::Type::Float16, h5::Type::BFloat16})
      f.create_dataset("float/" + h5::to_string(t), t, {R, C}, {{8, C}, true}).write(fv.data());
    f.create_dataset("float64", h5::Type::Float64, {R, C}).write(dv.data());
    f.create_dataset("int32", h5::Type::Int32, {R, C}).write(iv.data());
    f.create_dataset("int64", h5::Type::Int64, {R * C}).write(lv.data());
    f.create_dataset("uint8", h5::Type::UInt8, {R * C}, {{}, false}).write(uv.data());
    f.close();
  }
  h5::File f = h5::open_file(path);
  for (h5::Type t : {h5::Type::Float32, h5::Type::Float16, h5::Type::BFloat16}) {
    h5::Dataset ds = f.open_dataset("float/" + h5::to_string(t));
    EXPECT_EQ(ds.type(), t);
    EXPECT_EQ(ds.type_name(), h5::to_string(t));
    EXPECT_EQ(ds.dims(), (std::vector<int64_t>{R, C}));
    EXPECT_TRUE(ds.is_chunked());
    EXPECT_TRUE(ds.has_fletcher32());
    const std::vector<float> back = ds.read_all<float>();
    for (size_t i = 0; i < fv.size(); ++i) {
      const float want = t == h5::Type::Float16 ? kF16ref.rounded(fv[i]) : t == h5::Type::BFloat16 ? kBF16ref.rounded(fv[i]) : fv[i];
      ASSERT_EQ(back[i], want) << h5::to_string(t) << " element " << i;
    }
    std::vector<float> rows(size_t(6 * C));  // rows 7..12 cross the chunk boundary at 8
    ds.read_rows(7, 6, rows.data());
    for (size_t i = 0; i < rows.size(); ++i) ASSERT_EQ(rows[i], back[size_t(7 * C) + i]);
  }
  EXPECT_EQ(f.open_dataset("float64").read_all<double>(), dv);
  EXPECT_EQ(f.open_dataset("int32").read_all<int32_t>(), iv);
  EXPECT_EQ(f.open_dataset("int64").read_all<int64_t>(), lv);
  h5::Dataset u8 = f.open_dataset("uint8");
  EXPECT_EQ(u8.read_all<uint8_t>(), uv);
  EXPECT_EQ(u8.type(), h5::Type::UInt8);
  EXPECT_FALSE(u8.has_fletcher32());
  // HDF5 converts between numeric types on request.
  const std::vector<double> as_double = f.open_dataset("int32").read_all<double>();
  EXPECT_EQ(as_double[5], double(iv[5]));
}

TEST(H5, RowRangesWritePiecewise) {
  TempDir dir;
  const int64_t R = 100, C = 3;
  const std::string path = dir / "rows.h5";
  std::vector<float> all = random_values(size_t(R * C), 4);
  {
    h5::File f = h5::create_file(path);
    h5::Dataset ds = f.create_dataset("m", h5::Type::BFloat16, {R, C}, {{16, C}, true});
    h5::Dataset seq = f.create_dataset("s", h5::Type::Int64, {R}, {{10}, true});
    std::vector<int64_t> sv(static_cast<size_t>(R));
    for (int64_t r = 0; r < R; ++r) sv[r] = r * r;
    for (int64_t first = 0; first < R; first += 30) {
      const int64_t n = std::min<int64_t>(30, R - first);
      ds.write_rows(first, n, all.data() + first * C);
      seq.write_rows(first, n, sv.data() + first);
    }
    EXPECT_SAE_ERROR(ds.write_rows(95, 10, all.data()), ErrorKind::Internal, {"rows.h5", "/m", "out of range"});
    ds.reset();
    seq.reset();
    f.close();
  }
  h5::File f = h5::open_file(path);
  h5::Dataset ds = f.open_dataset("m");
  std::vector<float> part(size_t(45 * C));
  ds.read_rows(20, 45, part.data());
  for (int64_t i = 0; i < 45 * C; ++i) ASSERT_EQ(part[i], kBF16ref.rounded(all[size_t(20 * C + i)]));
  std::vector<int64_t> s(3);
  f.open_dataset("s").read_rows(97, 3, s.data());
  EXPECT_EQ(s, (std::vector<int64_t>{97 * 97, 98 * 98, 99 * 99}));
  f.open_dataset("s").read_rows(0, 0, s.data());  // an empty range is fine
}

TEST(H5, AttributesRoundTrip) {
  TempDir dir;
  const std::string path = dir / "attrs.h5";
  {
    h5::File f = h5::create_file(path);
    f.write_string_attribute("name", "héllo, wörld");
    f.write_string_attribute("empty", "");
    f.write_int_attribute("big", int64_t(1) << 50);
    f.write_int_attribute("big", -(int64_t(1) << 50));  // replaces
    f.write_double_attribute("pi", 3.141592653589793);
    f.write_int_vector_attribute("iv", {1, -2, 3});
    f.write_double_vector_attribute("dv", {0.5, 1e300});
    h5::Dataset ds = f.create_dataset("g/x", h5::Type::Int32, {4});
    ds.write_string_attribute("unit", "tokens");
    EXPECT_EQ(ds.where(), path + ": /g/x");
  }
  h5::File f = h5::open_file(path);
  EXPECT_EQ(f.read_string_attribute("name"), "héllo, wörld");
  EXPECT_EQ(f.read_string_attribute("empty"), "");
  EXPECT_EQ(f.read_int_attribute("big"), -(int64_t(1) << 50));
  EXPECT_EQ(f.read_double_attribute("pi"), 3.141592653589793);
  EXPECT_EQ(f.read_double_attribute("big"), -double(int64_t(1) << 50));  // integers read as numbers
  EXPECT_EQ(f.read_int_vector_attribute("iv"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.read_double_vector_attribute("dv"), (std::vector<double>{0.5, 1e300}));
  EXPECT_EQ(f.attribute_names(), (std::vector<std::string>{"big", "dv", "empty", "iv", "name", "pi"}));
  EXPECT_EQ(f.attribute_kind("name"), h5::Object::AttributeKind::String);
  EXPECT_EQ(f.attribute_kind("pi"), h5::Object::AttributeKind::Float);
  EXPECT_EQ(f.attribute_size("iv"), 3);
  EXPECT_EQ(f.open_dataset("g/x").read_string_attribute("unit"), "tokens");
  EXPECT_SAE_ERROR(f.read_int_attribute("missing"), ErrorKind::User, {"attrs.h5", "'missing'", "missing"});
  EXPECT_SAE_ERROR(f.read_int_attribute("name"), ErrorKind::User, {"attrs.h5", "'name'", "a string"});
  EXPECT_SAE_ERROR(f.read_int_attribute("pi"), ErrorKind::User, {"'pi'", "expected an integer"});
  EXPECT_SAE_ERROR(f.read_string_attribute("big"), ErrorKind::User, {"'big'", "not a string"});
  EXPECT_SAE_ERROR(f.read_int_attribute("iv"), ErrorKind::User, {"'iv'", "3 values"});
  EXPECT_SAE_ERROR(f.open_dataset("g/x").read_int_attribute("nope"), ErrorKind::User, {"attrs.h5: /g/x", "'nope'"});
}

TEST(H5, GroupsListsAndExistence) {
  TempDir dir;
  const std::string path = dir / "groups.h5";
  {
    h5::File f = h5::create_file(path);
    f.create_dataset("a/b/z", h5::Type::Int32, {2});
    f.create_dataset("a/b/y", h5::Type::Float32, {2, 2});
    f.create_group("a/b/sub");
    f.create_dataset("empty", h5::Type::Float32, {0, 4});  // zero rows: stored contiguous
    f.create_dataset("scalar", h5::Type::Int64, {});
  }
  h5::File f = h5::open_file(path);
  EXPECT_TRUE(f.exists("a/b/z"));
  EXPECT_TRUE(f.exists("a/b"));
  EXPECT_FALSE(f.exists("a/c/z"));
  EXPECT_FALSE(f.exists("nope"));
  EXPECT_EQ(f.open_group("a/b").list_datasets(), (std::vector<std::string>{"y", "z"}));
  EXPECT_EQ(f.list_datasets(), (std::vector<std::string>{"empty", "scalar"}));
  EXPECT_EQ(f.open_dataset("empty").dims(), (std::vector<int64_t>{0, 4}));
  EXPECT_TRUE(f.open_dataset("empty").read_all<float>().empty());
  EXPECT_EQ(f.open_dataset("scalar").dims(), std::vector<int64_t>{});
  EXPECT_SAE_ERROR(f.open_dataset("a/b/w"), ErrorKind::User, {"groups.h5: /a/b/w", "no such dataset"});
  EXPECT_SAE_ERROR(f.open_group("q"), ErrorKind::User, {"groups.h5: /q", "no such group"});
  EXPECT_SAE_ERROR(f.open_dataset("a/b"), ErrorKind::User, {"/a/b", "not a dataset"});
}

TEST(H5, MissingAndForeignFilesAreUserErrors) {
  TempDir dir;
  EXPECT_SAE_ERROR(h5::open_file(dir / "absent.h5"), ErrorKind::User, {dir / "absent.h5", "no such file"});
  spit(dir / "text.h5", "this is not HDF5\n");
  EXPECT_SAE_ERROR(h5::open_file(dir / "text.h5"), ErrorKind::User, {dir / "text.h5", "not an HDF5 file"});
  EXPECT_SAE_ERROR(h5::create_file(dir / "no/such/dir/x.h5"), ErrorKind::User, {"no/such/dir/x.h5", "cannot create"});
}

TEST(H5, Float16OverflowIsUserError) {
  TempDir dir;
  h5::File f = h5::create_file(dir / "o.h5");
  h5::Dataset ds = f.create_dataset("x", h5::Type::Float16, {3});
  const float ok[3] = {65504.0f, -1.0f, NAN};
  ds.write(ok);  // NaN is stored as NaN: only finite overflow is refused
  const float bad[3] = {1.0f, 70000.0f, 2.0f};
  EXPECT_SAE_ERROR(ds.write(bad), ErrorKind::User, {"o.h5: /x", "70000", "row 1", "overflows float16"});
}

// ============================== Store ==============================

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

