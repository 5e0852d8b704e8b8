// The HDF5 layer (pipeline/io/h5): round trips of every type, 16-bit conversions against
// reference roundings and HDF5's own, row ranges, attributes, groups, file errors.
#include "tests/unit/h5_test_util.hpp"

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
    ASSERT_EQ(saepipe::float_to_bf16(x), kBF16ref.round(x)) << "x = " << x << " bits " << std::bit_cast<uint32_t>(x);
  }
  for (float nan : {std::nanf(""), -std::nanf(""), std::bit_cast<float>(0x7f800001u), std::bit_cast<float>(0xff800001u)}) {
    const uint16_t b = saepipe::float_to_bf16(nan);
    EXPECT_TRUE(std::isnan(saepipe::bf16_to_float(b)));
    EXPECT_EQ(b & 0x8000, std::signbit(nan) ? 0x8000 : 0);
  }
  EXPECT_EQ(saepipe::float_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(saepipe::float_to_bf16(-INFINITY), 0xff80);
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
  for (float x : xs) ASSERT_EQ(saepipe::float_to_f16(x), kF16ref.round(x)) << "x = " << x;
  for (float nan : {std::nanf(""), -std::nanf(""), std::bit_cast<float>(0x7f800001u)}) {
    const uint16_t b = saepipe::float_to_f16(nan);
    EXPECT_TRUE(std::isnan(saepipe::f16_to_float(b)));
    EXPECT_EQ(b & 0x8000, std::signbit(nan) ? 0x8000 : 0);
  }
  EXPECT_EQ(saepipe::float_to_f16(INFINITY), 0x7c00);
}

TEST(H5Conversion, WideningIsExactForEveryBitPattern) {
  for (uint32_t b = 0; b < 65536; ++b) {
    ASSERT_TRUE(same_float(saepipe::f16_to_float(uint16_t(b)), float(kF16ref.decode(uint16_t(b))))) << b;
    ASSERT_TRUE(same_float(saepipe::bf16_to_float(uint16_t(b)), float(kBF16ref.decode(uint16_t(b))))) << b;
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
