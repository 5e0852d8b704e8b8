// Job files: the schema's defaults, and one clear user error (exit 2) naming the file, the
// line and the key for each kind of mistake.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/core/resources.hpp"

using namespace saepipe;

namespace {

// Runs parse_job and returns the user error's message ("" when it parsed).
std::string error_of(const std::string& text) {
  try {
    parse_job(text, "job.toml");
  } catch (const SaeError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::User) << e.what();
    return e.what();
  }
  return "";
}

const char* kMinimal = "[run]\nname = \"t\"\n";

}  // namespace

TEST(Job, MinimalJobGetsEveryDefault) {
  Job job = parse_job(kMinimal, "job.toml");
  EXPECT_EQ(job.run.name, "t");
  EXPECT_EQ(job.run_dir(), "runs/t");
  EXPECT_EQ(job.store_dir(), "runs/t/activations");
  EXPECT_EQ(job.sae_path(), "runs/t/sae/sae.h5");
  EXPECT_EQ(job.harvest.hooks, std::vector<std::string>{"blocks.0.hook_resid_post"});
  EXPECT_EQ(job.harvest.dtype, "float32");
  EXPECT_EQ(job.train.d_sae, 512);
  EXPECT_DOUBLE_EQ(job.train.adam_eps, 6.25e-10);
  EXPECT_EQ(job.resources_train.ranks, 1);
  // The resolved text is itself a valid job that resolves to the same text.
  Job again = parse_job(job.resolved_toml, "job.toml");
  EXPECT_EQ(again.train.lr, job.train.lr);
  EXPECT_NE(job.resolved_toml.find("d_sae = 512"), std::string::npos);
  EXPECT_NE(job.resolved_toml.find("[resources.stats]"), std::string::npos);
}

TEST(Job, EmbeddedQuickstartIsValid) {
  Job job = parse_job(embedded_resource("quickstart.toml"), "quickstart.toml");
  EXPECT_EQ(job.run.name, "quickstart");
  EXPECT_EQ(job.harvest.source, "synthetic");
}

TEST(Job, IntegerAcceptedForNumberAndResolvedAsFloat) {
  Job job = parse_job(std::string(kMinimal) + "[train]\nlr = 1\n", "job.toml");
  EXPECT_DOUBLE_EQ(job.train.lr, 1.0);
  EXPECT_NE(job.resolved_toml.find("lr = 1.0"), std::string::npos) << job.resolved_toml;
}

TEST(Job, UnknownKeyNamesKeyAndLine) {
  std::string e = error_of(std::string(kMinimal) + "[train]\nd_sea = 4\n");
  EXPECT_NE(e.find("job.toml:4"), std::string::npos) << e;
  EXPECT_NE(e.find("train.d_sea: unknown key"), std::string::npos) << e;
}

TEST(Job, UnknownSection) {
  std::string e = error_of(std::string(kMinimal) + "[trian]\nk = 4\n");
  EXPECT_NE(e.find("trian: unknown key"), std::string::npos) << e;
}

TEST(Job, WrongType) {
  std::string e = error_of(std::string(kMinimal) + "[train]\nk = \"8\"\n");
  EXPECT_NE(e.find("job.toml:4: train.k: expected an integer, got string \"8\""), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[train]\nd_sae = 4.5\n");
  EXPECT_NE(e.find("train.d_sae: expected an integer, got float 4.5"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[harvest]\nhooks = \"blocks.0.hook_resid_post\"\n");
  EXPECT_NE(e.find("harvest.hooks: expected an array"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[harvest]\nhooks = [1]\n");
  EXPECT_NE(e.find("harvest.hooks[0]: expected a string"), std::string::npos) << e;
  e = error_of("run = 3\n");
  EXPECT_NE(e.find("run: expected a table"), std::string::npos) << e;
}

TEST(Job, OutOfRange) {
  std::string e = error_of(std::string(kMinimal) + "[train]\nk = 0\n");
  EXPECT_NE(e.find("train.k: must be >= 1, got 0"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[train]\nlr = -0.1\n");
  EXPECT_NE(e.find("train.lr: must be > 0"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[train]\nheldout_fraction = 1.0\n");
  EXPECT_NE(e.find("train.heldout_fraction: must be < 1"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[harvest.synthetic]\ndecay = 1.5\n");
  EXPECT_NE(e.find("harvest.synthetic.decay: must be <= 1"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[train]\nlr = nan\n");
  EXPECT_NE(e.find("train.lr: must be a finite number"), std::string::npos) << e;
}

TEST(Job, EnumAndPattern) {
  std::string e = error_of(std::string(kMinimal) + "[harvest]\ndtype = \"float64\"\n");
  EXPECT_NE(e.find("harvest.dtype: \"float64\" is not one of"), std::string::npos) << e;
  e = error_of("[run]\nname = \"../escape\"\n");
  EXPECT_NE(e.find("run.name: \"../escape\" does not match"), std::string::npos) << e;
}

TEST(Job, MissingRequiredKey) {
  std::string e = error_of("[run]\nseed = 1\n");
  EXPECT_NE(e.find("run.name: required key is missing"), std::string::npos) << e;
  e = error_of("[train]\nk = 4\n");
  EXPECT_NE(e.find("run: required key is missing"), std::string::npos) << e;
}

TEST(Job, SyntaxErrorNamesLine) {
  std::string e = error_of(std::string(kMinimal) + "[train\nk = 4\n");
  EXPECT_NE(e.find("job.toml:3: TOML syntax error"), std::string::npos) << e;
}

TEST(Job, CrossFieldChecks) {
  std::string e = error_of(std::string(kMinimal) + "[train]\nk = 600\nd_sae = 512\n");
  EXPECT_NE(e.find("train.k: must be <= train.d_sae (512), got 600"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[harvest]\ncontext = 100\nshard_tokens = 1050\nn_tokens = 2000\n");
  EXPECT_NE(e.find("harvest.shard_tokens: must be a multiple of harvest.context"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[train]\nhook = \"blocks.3.hook_resid_post\"\n");
  EXPECT_NE(e.find("train.hook: \"blocks.3.hook_resid_post\" is not among harvest.hooks"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[harvest]\nhooks = [\"a\", \"a\"]\n");
  EXPECT_NE(e.find("harvest.hooks: hook \"a\" is listed twice"), std::string::npos) << e;
}

// [[train.sweep]]: an entry overrides the train keys it names (by the same key table as
// [train]) and keeps the main model's value of every other; a key not marked "sweepable" in
// the schema is an unknown key there.
TEST(Job, SweepEntriesOverrideTheKeysTheyName) {
  Job job = parse_job(std::string(kMinimal) +
                          "[train]\nd_sae = 256\nk = 16\nlr = 0.001\n"
                          "[[train.sweep]]\nname = \"a\"\narchitecture = \"jumprelu\"\nlr = 1\nl0_coef = 0.5\n"
                          "[[train.sweep]]\nname = \"b\"\nk = 4\nresample_every = 7\n",
                      "job.toml");
  ASSERT_EQ(job.train.sweep.size(), 2u);
  const TrainConfig& a = job.train.sweep[0];
  const TrainConfig& b = job.train.sweep[1];
  EXPECT_EQ(a.sweep_name, "a");
  EXPECT_EQ(a.architecture, "jumprelu");
  EXPECT_DOUBLE_EQ(a.lr, 1.0);  // an integer where a number goes
  EXPECT_DOUBLE_EQ(a.l0_coef, 0.5);
  EXPECT_EQ(a.d_sae, 256);  // the main model's
  EXPECT_EQ(a.k, 16);
  EXPECT_EQ(b.k, 4);
  EXPECT_EQ(b.resample_every, 7);
  EXPECT_DOUBLE_EQ(b.lr, 0.001);
  EXPECT_EQ(b.architecture, "topk");
  EXPECT_TRUE(a.sweep.empty());
  EXPECT_TRUE(job.train.sweep_name.empty());
  std::string e = error_of(std::string(kMinimal) + "[[train.sweep]]\nname = \"a\"\nbatch_tokens = 8\n");
  EXPECT_NE(e.find("job.toml:5: train.sweep[0].batch_tokens: unknown key"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[[train.sweep]]\nname = \"a\"\nk = 0\n");
  EXPECT_NE(e.find("train.sweep[0].k: must be >= 1, got 0"), std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[[train.sweep]]\nname = \"a\"\narchitecture = \"dense\"\n");
  EXPECT_NE(e.find("train.sweep[0].architecture: \"dense\" is not one of"), std::string::npos) << e;
}

// lr left out: 2e-4 / sqrt(d_sae / 2^14) of each model's own d_sae, times sqrt(768 / d_in) when
// the job states a d_in below 768 (here the synthetic store's default d_model 64: sqrt(12)),
// written into the resolved job (the main [train] and every sweep entry), so re-reading the
// resolved job gives the same values; an lr given in [train] is every entry's that leaves it out.
TEST(Job, LearningRateDefaultScalesWithDictionarySize) {
  const double narrow = std::sqrt(12.0);
  Job job = parse_job(std::string(kMinimal) +
                          "[train]\nd_sae = 256\n"
                          "[[train.sweep]]\nname = \"big\"\nd_sae = 65536\n"
                          "[[train.sweep]]\nname = \"own\"\nlr = 0.01\n"
                          "[[train.sweep]]\nname = \"same\"\nk = 4\n",
                      "job.toml");
  EXPECT_DOUBLE_EQ(job.train.lr, 2e-4 * 8.0 * narrow);  // sqrt(16384 / 256) = 8
  ASSERT_EQ(job.train.sweep.size(), 3u);
  EXPECT_DOUBLE_EQ(job.train.sweep[0].lr, 1e-4 * narrow);  // sqrt(16384 / 65536) = 1/2
  EXPECT_DOUBLE_EQ(job.train.sweep[1].lr, 0.01);
  EXPECT_DOUBLE_EQ(job.train.sweep[2].lr, 2e-4 * 8.0 * narrow);
  EXPECT_NE(job.resolved_toml.find("lr = 0.0055425"), std::string::npos) << job.resolved_toml;
  const Job again = parse_job(job.resolved_toml, "job.toml");
  EXPECT_DOUBLE_EQ(again.train.lr, job.train.lr);
  for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(again.train.sweep[i].lr, job.train.sweep[i].lr) << i;
  EXPECT_EQ(again.resolved_toml, job.resolved_toml);
  // Given in [train]: every entry that leaves it out keeps it, whatever its d_sae.
  job = parse_job(std::string(kMinimal) + "[train]\nlr = 0.003\n[[train.sweep]]\nname = \"big\"\nd_sae = 65536\n", "job.toml");
  EXPECT_DOUBLE_EQ(job.train.lr, 0.003);
  EXPECT_DOUBLE_EQ(job.train.sweep[0].lr, 0.003);
  // The default job: d_sae 512, d_model 64.
  EXPECT_DOUBLE_EQ(parse_job(kMinimal, "job.toml").train.lr, 2e-4 * std::sqrt(32.0) * narrow);
  // d_in 768 or wider, or not known (a model's store): Gao et al.'s rule as it is.
  EXPECT_DOUBLE_EQ(parse_job(std::string(kMinimal) + "[harvest.synthetic]\nd_model = 1024\n", "job.toml").train.lr,
                   2e-4 * std::sqrt(32.0));
  EXPECT_DOUBLE_EQ(parse_job(std::string(kMinimal) + "[harvest]\nsource = \"model\"\nmodel = \"m\"\ntokens = \"t.bin\"\n", "job.toml").train.lr,
                   2e-4 * std::sqrt(32.0));
  // A crosscoder reads its hooks side by side: d_in = 3 x 64.
  job = parse_job(std::string(kMinimal) + "[harvest]\nhooks = [\"a\", \"b\", \"c\"]\n[train]\nhooks = [\"a\", \"b\", \"c\"]\n",
                  "job.toml");
  EXPECT_DOUBLE_EQ(job.train.lr, 2e-4 * std::sqrt(32.0) * 2.0);  // sqrt(768 / 192) = 2
  // A store train.activations names: its manifest's d_model.
  const std::string store = ::testing::TempDir() + "saepipe_lr_store";
  std::filesystem::create_directories(store);
  std::ofstream(store + "/manifest.json") << R"({"schema": "saepipe.activations", "version": 1, "d_model": 48})";
  job = parse_job(std::string(kMinimal) + "[train]\nactivations = \"" + store + "\"\nd_sae = 256\n", "job.toml");
  EXPECT_DOUBLE_EQ(job.train.lr, 2e-4 * 8.0 * 4.0);  // sqrt(768 / 48) = 4: the issue's 1.6e-3 x 4
}

// dead_tokens / resample_every left out: batchtopk and jumprelu resample every 50 steps the
// latents silent for n_tokens / 100 (at least 4 batches, at most 10M); the others (and
// transcoders, which cannot resample) keep 10M and no resampling; per sweep entry, in the resolved job.
TEST(Job, DeadLatentDefaultsFollowTheArchitecture) {
  Job job = parse_job(std::string(kMinimal) +
                          "[train]\narchitecture = \"topk\"\nn_tokens = 3000000\n"
                          "[[train.sweep]]\nname = \"b\"\narchitecture = \"batchtopk\"\n"
                          "[[train.sweep]]\nname = \"m\"\narchitecture = \"matryoshka\"\nresample_every = 7\n"
                          "[[train.sweep]]\nname = \"j\"\narchitecture = \"jumprelu\"\n"
                          "[[train.sweep]]\nname = \"r\"\narchitecture = \"relu\"\n",
                      "job.toml");
  EXPECT_EQ(job.train.dead_tokens, 10000000);
  EXPECT_EQ(job.train.resample_every, 0);
  EXPECT_EQ(job.train.sweep[0].dead_tokens, 30000);
  EXPECT_EQ(job.train.sweep[0].resample_every, 50);
  EXPECT_EQ(job.train.sweep[1].dead_tokens, 10000000);  // matryoshka: its absorption
  EXPECT_EQ(job.train.sweep[1].resample_every, 7);
  EXPECT_EQ(job.train.sweep[2].dead_tokens, 30000);  // jumprelu: thresholds that rose above every input
  EXPECT_EQ(job.train.sweep[2].resample_every, 50);
  EXPECT_EQ(job.train.sweep[3].dead_tokens, 10000000);
  EXPECT_EQ(job.train.sweep[3].resample_every, 0);
  const Job again = parse_job(job.resolved_toml, "job.toml");
  EXPECT_EQ(again.resolved_toml, job.resolved_toml);
  EXPECT_EQ(again.train.sweep[0].dead_tokens, 30000);
  job = parse_job(std::string(kMinimal) + "[train]\narchitecture = \"batchtopk\"\nn_tokens = 100000\n", "job.toml");
  EXPECT_EQ(job.train.dead_tokens, 4 * 4096);  // at least 4 batches
  job = parse_job(std::string(kMinimal) + "[train]\narchitecture = \"batchtopk\"\nn_tokens = 5000000000\n", "job.toml");
  EXPECT_EQ(job.train.dead_tokens, 10000000);  // Gao et al.'s window at most
  EXPECT_EQ(job.train.resample_every, 50);
  job = parse_job(std::string(kMinimal) + "[harvest]\nhooks = [\"a\", \"b\"]\n[train]\narchitecture = \"batchtopk\"\n"
                                          "hook = \"a\"\ntarget_hook = \"b\"\n", "job.toml");
  EXPECT_EQ(job.train.dead_tokens, 10000000);  // a transcoder
  EXPECT_EQ(job.train.resample_every, 0);
  job = parse_job(std::string(kMinimal) + "[train]\narchitecture = \"batchtopk\"\ndead_tokens = 123\n", "job.toml");
  EXPECT_EQ(job.train.dead_tokens, 123);
}

// target_l0 left out: the model's k for relu / jumprelu / gated when the job gives neither
// target_l0 nor the model's coefficient (l1_coef / l0_coef, in [train] or the entry), else 0; written into the
// resolved job, which re-reads to the same values (the written coefficient starts the adaptation).
TEST(Job, SparsityTargetDefaultsToK) {
  Job job = parse_job(std::string(kMinimal) +
                          "[train]\narchitecture = \"relu\"\nk = 6\n"
                          "[[train.sweep]]\nname = \"jr\"\narchitecture = \"jumprelu\"\nk = 3\n"
                          "[[train.sweep]]\nname = \"fixed\"\narchitecture = \"jumprelu\"\nl0_coef = 0.02\n"
                          "[[train.sweep]]\nname = \"tk\"\narchitecture = \"topk\"\n"
                          "[[train.sweep]]\nname = \"g\"\narchitecture = \"gated\"\nk = 5\n"
                          "[[train.sweep]]\nname = \"gfixed\"\narchitecture = \"gated\"\nl1_coef = 0.2\n",
                      "job.toml");
  EXPECT_DOUBLE_EQ(job.train.target_l0, 6.0);
  ASSERT_EQ(job.train.sweep.size(), 5u);
  EXPECT_DOUBLE_EQ(job.train.sweep[0].target_l0, 3.0);
  EXPECT_DOUBLE_EQ(job.train.sweep[1].target_l0, 0.0);
  EXPECT_DOUBLE_EQ(job.train.sweep[2].target_l0, 0.0);
  EXPECT_DOUBLE_EQ(job.train.sweep[3].target_l0, 5.0);  // gated: l1_coef is its coefficient
  EXPECT_DOUBLE_EQ(job.train.sweep[4].target_l0, 0.0);
  EXPECT_NE(job.resolved_toml.find("target_l0 = 6.0"), std::string::npos) << job.resolved_toml;
  const Job again = parse_job(job.resolved_toml, "job.toml");
  EXPECT_EQ(again.resolved_toml, job.resolved_toml);
  for (size_t i = 0; i < 5; ++i) EXPECT_DOUBLE_EQ(again.train.sweep[i].target_l0, job.train.sweep[i].target_l0) << i;
  // A coefficient in [train] fixes it for every entry that leaves target_l0 out.
  job = parse_job(std::string(kMinimal) + "[train]\narchitecture = \"relu\"\nl1_coef = 0.3\n", "job.toml");
  EXPECT_DOUBLE_EQ(job.train.target_l0, 0.0);
  // Given: kept, with the given coefficient as the starting value.
  job = parse_job(std::string(kMinimal) + "[train]\narchitecture = \"relu\"\nl1_coef = 0.3\ntarget_l0 = 4\n", "job.toml");
  EXPECT_DOUBLE_EQ(job.train.target_l0, 4.0);
  EXPECT_DOUBLE_EQ(job.train.l1_coef, 0.3);
}

// matryoshka_prefixes: strictly increasing sizes <= d_sae, in [train] and in each sweep entry
// (one line naming the key); the resolved model gets the default nesting when left empty.
TEST(Job, MatryoshkaPrefixesAreChecked) {
  Job job = parse_job(std::string(kMinimal) + "[train]\narchitecture = \"matryoshka\"\nd_sae = 64\n"
                          "matryoshka_prefixes = [8, 32]\n",
                      "job.toml");
  EXPECT_EQ(job.train.matryoshka_prefixes, (std::vector<int64_t>{8, 32}));
  EXPECT_EQ(matryoshka_prefixes_in_force(job.train.matryoshka_prefixes, 64), (std::vector<int64_t>{8, 32, 64}));
  EXPECT_EQ(matryoshka_prefixes_in_force({}, 64), (std::vector<int64_t>{4, 8, 16, 32, 64}));
  EXPECT_EQ(matryoshka_prefixes_in_force({}, 20), (std::vector<int64_t>{1, 2, 5, 10, 20}));
  std::string e = error_of(std::string(kMinimal) + "[train]\nd_sae = 64\nmatryoshka_prefixes = [8, 8]\n");
  EXPECT_NE(e.find("train.matryoshka_prefixes: must be strictly increasing sizes <= d_sae (64), got 8 at position 1"),
            std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[train]\nd_sae = 64\n[[train.sweep]]\nname = \"m\"\nd_sae = 32\n"
               "matryoshka_prefixes = [16, 48]\n");
  EXPECT_NE(e.find("train.sweep[0].matryoshka_prefixes: must be strictly increasing sizes <= d_sae (32), got 48"),
            std::string::npos) << e;
  e = error_of(std::string(kMinimal) + "[train]\nmatryoshka_prefixes = [0]\n");
  EXPECT_NE(e.find("train.matryoshka_prefixes"), std::string::npos) << e;
}

// The key tables of job.hpp and the schema agree: every key of every section reaches a member
// of the schema's type (a key on one side only is an internal error at the first parse), and
// every sweepable key can be given in a sweep entry.
TEST(Job, KeyTablesMatchTheSchema) {
  const nlohmann::json schema = nlohmann::json::parse(embedded_resource("job.schema.json"));
  std::string sweep = "[[train.sweep]]\nname = \"all\"\n";
  int sweepable = 0;
  for (auto& [name, prop] : schema["properties"]["train"]["properties"].items()) {
    if (!prop.value("sweepable", false)) continue;
    ++sweepable;
    // A key whose default is derived from others has an example value instead.
    const nlohmann::json& v = prop.contains("default") ? prop["default"] : prop.at("examples").at(0);
    sweep += name + " = " + (v.is_string() ? "\"" + v.get<std::string>() + "\"" : v.dump()) + "\n";
  }
  EXPECT_GE(sweepable, 13);
  Job job;
  ASSERT_NO_THROW(job = parse_job(std::string(kMinimal) + sweep, "job.toml"));
  ASSERT_EQ(job.train.sweep.size(), 1u);
  // Each table names distinct keys and distinct members.
  auto distinct = [](const auto& keys) {
    for (size_t i = 0; i < keys.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (std::string(keys[i].name) == keys[j].name || keys[i].member == keys[j].member) return false;
    return true;
  };
  EXPECT_TRUE(distinct(RunConfig::keys));
  EXPECT_TRUE(distinct(HarvestConfig::keys));
  EXPECT_TRUE(distinct(SyntheticConfig::keys));
  EXPECT_TRUE(distinct(TrainConfig::keys));
  EXPECT_TRUE(distinct(StatsConfig::keys));
  EXPECT_TRUE(distinct(InterpretConfig::keys));
  EXPECT_TRUE(distinct(StageResources::keys));
  // Every schema key of a section is in its table (the parse above would have failed
  // otherwise; this names the section when it does).
  auto count = [&](const nlohmann::json& props) {
    size_t n = 0;
    for (auto& [name, prop] : props.items()) n += prop.value("type", nlohmann::json()) != "object" && name != "sweep";
    return n;
  };
  const nlohmann::json& p = schema["properties"];
  EXPECT_EQ(count(p["run"]["properties"]), RunConfig::keys.size());
  EXPECT_EQ(count(p["harvest"]["properties"]), HarvestConfig::keys.size());
  EXPECT_EQ(count(p["harvest"]["properties"]["synthetic"]["properties"]), SyntheticConfig::keys.size());
  EXPECT_EQ(count(p["train"]["properties"]), TrainConfig::keys.size());
  EXPECT_EQ(count(p["stats"]["properties"]), StatsConfig::keys.size());
  EXPECT_EQ(count(p["interpret"]["properties"]), InterpretConfig::keys.size());
  EXPECT_EQ(count(schema["$defs"]["resources"]["properties"]), StageResources::keys.size());
}

TEST(Job, MissingJobFileAndInputPath) {
  try {
    load_job_serial("/nonexistent/job.toml");
    FAIL() << "no error";
  } catch (const SaeError& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_STREQ(e.what(), "/nonexistent/job.toml: job file not found");
  }
  auto path = std::filesystem::temp_directory_path() / "saepipe_test_job_input.toml";
  std::ofstream(path) << kMinimal << "[train]\nactivations = \"/nonexistent/store\"\n";
  try {
    load_job_serial(path.string());
    FAIL() << "no error";
  } catch (const SaeError& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("train.activations: activation store \"/nonexistent/store\" does not exist"),
              std::string::npos)
        << e.what();
  }
  std::filesystem::remove(path);
}

// ---- free space (pipeline/core/fs_util) ----

TEST(FreeSpace, ReportedAndEnforced) {
  EXPECT_EQ(format_bytes(812), "812 B");
  EXPECT_EQ(format_bytes(17825792), "17.8 MB");
  EXPECT_EQ(format_bytes(1200000000000), "1.2 TB");
  const std::string dir = std::filesystem::temp_directory_path().string();
  const int64_t free = free_bytes(dir);
  ASSERT_GT(free, 0);  // the test writes files there, so some space is free
  EXPECT_EQ(free_bytes(dir + "/no/such/dir"), -1);
  require_free_space(dir, 1, "a byte");  // passes
  require_free_space(dir + "/no/such/dir", INT64_MAX, "anything");  // unknown: no claim made
  try {
    require_free_space(dir, INT64_MAX, "the whole store");
    ADD_FAILURE() << "more than any file system holds was allowed";
  } catch (const SaeError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Internal);  // a system condition: exit 1
    const std::string m = e.what();
    EXPECT_NE(m.find(dir + ": the whole store needs 9.2 EB but its file system has "), std::string::npos) << m;
  }
}
