// The client's pieces on their own: display widths and tables, amounts, enum words, exit
// codes, request ids, connection settings, token files and product files.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "client/enums.h"
#include "client/product_file.h"
#include "client/rpc.h"
#include "client/settings.h"
#include "client/table.h"
#include "tests/test_util.h"

namespace gongdai::client {
namespace {

using gongdai::testing::TempDir;

TEST(DisplayWidthTest, WideCharactersTakeTwoColumns) {
  EXPECT_EQ(DisplayWidth(""), 0);
  EXPECT_EQ(DisplayWidth("abc"), 3);
  EXPECT_EQ(DisplayWidth("刘秀英"), 6);
  EXPECT_EQ(DisplayWidth("吉州区 B000001"), 14);
  EXPECT_EQ(DisplayWidth("Ａ１"), 4);              // fullwidth forms
  EXPECT_EQ(DisplayWidth("，"), 2);                // U+FF0C
  EXPECT_EQ(DisplayWidth("한국"), 4);              // Hangul syllables
  EXPECT_EQ(DisplayWidth("\xF0\xA0\x80\x80"), 2);  // U+20000, CJK extension B
  EXPECT_EQ(DisplayWidth("·é"), 2);                // narrow
  EXPECT_EQ(DisplayWidth("e\xCC\x81"), 1);         // e + combining acute accent
  EXPECT_EQ(DisplayWidth("\xFF\xFE"), 2);          // not UTF-8: one column per byte
}

TEST(PrintableTest, ControlCharactersCannotBreakATable) {
  EXPECT_EQ(Printable("a\nb\tc\x1b[31m"), "a b c [31m");
  EXPECT_EQ(Printable("刘秀英"), "刘秀英");
  EXPECT_EQ(Printable("\xE5\x88"), "??");  // a truncated sequence
}

TEST(FormatAmountTest, ThousandsSeparatorsAndTwoDecimals) {
  EXPECT_EQ(FormatAmount("1234567.5"), "1,234,567.50");
  EXPECT_EQ(FormatAmount("12000.00"), "12,000.00");
  EXPECT_EQ(FormatAmount("100"), "100.00");
  EXPECT_EQ(FormatAmount("999.99"), "999.99");
  EXPECT_EQ(FormatAmount("1000"), "1,000.00");
  EXPECT_EQ(FormatAmount("0.00"), "0.00");
  EXPECT_EQ(FormatAmount("-0.00"), "0.00");
  EXPECT_EQ(FormatAmount("-1234.50"), "-1,234.50");
  EXPECT_EQ(FormatAmount("100000000.00"), "100,000,000.00");
  EXPECT_EQ(FormatAmount(""), "");
  EXPECT_EQ(FormatAmount("n/a"), "n/a");
  EXPECT_EQ(FormatFen(123456), "1,234.56");
  EXPECT_EQ(FormatFen(5), "0.05");
  EXPECT_EQ(FormatFen(-100), "-1.00");
  EXPECT_EQ(FormatFen(std::numeric_limits<int64_t>::min()), "-92,233,720,368,547,758.08");
  EXPECT_EQ(FormatPercent("0.0525"), "5.25%");
  EXPECT_EQ(FormatPercent("0.0000"), "0.00%");
  // A rate with more places than a percentage's two is shown whole, never cut.
  EXPECT_EQ(FormatPercent("0.04275"), "4.275%");
  EXPECT_EQ(FormatPercent("0.0427500"), "4.275%");
  EXPECT_EQ(FormatPercent("0.1"), "10.00%");
  EXPECT_EQ(FormatPercent("1.0000"), "100.00%");
  EXPECT_EQ(FormatPercent("0.0435"), "4.35%");
}

TEST(TableTest, ColumnsLineUpWithChineseText) {
  Table table({{"Name"}, {"County"}, {"Amount", Align::kRight}});
  table.AddRow({"刘秀英", "吉州区", "12,000.00"});
  table.AddRow({"Li Wei", "Qingyuan", "800.00"});
  table.AddRow({"王芳", "青原区", "1,234,567.50"});
  const std::string text = table.Render();
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0], "Name    County          Amount");
  EXPECT_EQ(lines[1], "------  --------  ------------");
  EXPECT_EQ(lines[2], "刘秀英  吉州区       12,000.00");
  EXPECT_EQ(lines[3], "Li Wei  Qingyuan        800.00");
  EXPECT_EQ(lines[4], "王芳    青原区    1,234,567.50");
  for (const std::string& line : lines)
    EXPECT_EQ(DisplayWidth(line), DisplayWidth(lines[0])) << line;
}

TEST(TableTest, KeyValueHasNoHeader) {
  Table kv = Table::KeyValue();
  kv.AddRow({"Borrower", "B000001 刘秀英"});
  kv.AddRow({"County", "吉州区"});
  EXPECT_EQ(kv.Render(), "Borrower  B000001 刘秀英\nCounty    吉州区        \n");
}

TEST(EnumWordsTest, WordsProtoNamesAndAliases) {
  EXPECT_EQ(MethodWords().Parse("monthly"), v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
  EXPECT_EQ(MethodWords().Parse("equal_principal_monthly"),
            v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
  EXPECT_EQ(MethodWords().Parse("REPAYMENT_METHOD_BULLET"), v1::REPAYMENT_METHOD_BULLET);
  EXPECT_EQ(MethodWords().Choices(), "monthly|bullet");
  EXPECT_EQ(CategoryWords().Parse("Model-Worker"), v1::BORROWER_CATEGORY_MODEL_WORKER);
  EXPECT_FALSE(CategoryWords().Parse("worker").has_value());
  EXPECT_FALSE(ChannelWords().Parse("").has_value());
  EXPECT_EQ(LoanStatusWords().Name(v1::ApiLoanStatus::WRITTEN_OFF), "written-off");
  EXPECT_EQ(LoanStatusWords().Parse("written-off"), v1::ApiLoanStatus::WRITTEN_OFF);
  EXPECT_EQ(TalentPoolWords().Name(0), "-");
  EXPECT_EQ(TalentPoolWords().Name(42), "unknown (42)");
}

TEST(ExitCodeTest, FollowsTheDocumentedTable) {
  using grpc::StatusCode;
  EXPECT_EQ(ExitCodeFor(StatusCode::OK, ""), 0);
  EXPECT_EQ(ExitCodeFor(StatusCode::INVALID_ARGUMENT, ""), 2);
  for (StatusCode code : {StatusCode::FAILED_PRECONDITION, StatusCode::NOT_FOUND,
                          StatusCode::ALREADY_EXISTS, StatusCode::OUT_OF_RANGE}) {
    EXPECT_EQ(ExitCodeFor(code, "X"), 3);
  }
  EXPECT_EQ(ExitCodeFor(StatusCode::UNAUTHENTICATED, ""), 4);
  EXPECT_EQ(ExitCodeFor(StatusCode::PERMISSION_DENIED, "SUPERVISOR_REQUIRED"), 4);
  EXPECT_EQ(ExitCodeFor(StatusCode::UNAVAILABLE, ""), 5);
  EXPECT_EQ(ExitCodeFor(StatusCode::DEADLINE_EXCEEDED, ""), 5);
  EXPECT_EQ(ExitCodeFor(StatusCode::RESOURCE_EXHAUSTED, "QUEUE_FULL"), 5);
  EXPECT_EQ(ExitCodeFor(StatusCode::RESOURCE_EXHAUSTED, ""), 1);
  EXPECT_EQ(ExitCodeFor(StatusCode::ABORTED, "LOAN_CHANGING"), 5);
  EXPECT_EQ(ExitCodeFor(StatusCode::ABORTED, "BORROWER_CHANGED"), 3);
  EXPECT_EQ(ExitCodeFor(StatusCode::ABORTED, ""), 1);
  EXPECT_EQ(ExitCodeFor(StatusCode::INTERNAL, ""), 1);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("bad profile")), 2);
  EXPECT_EQ(ExitCodeFor(absl::UnauthenticatedError("no token")), 4);
}

// What the client calls again (with the same request id) before it gives up: what may go
// through a moment later, never a refusal or a stopped ledger.
TEST(ExitCodeTest, RetriesOnlyWhatALaterAttemptMayCure) {
  using grpc::StatusCode;
  EXPECT_TRUE(Retryable(StatusCode::UNAVAILABLE, ""));
  EXPECT_FALSE(Retryable(StatusCode::UNAVAILABLE, "LEDGER_STOPPED"));
  EXPECT_TRUE(Retryable(StatusCode::UNAVAILABLE, "SERVER_STOPPING"));  // it may come back
  EXPECT_TRUE(Retryable(StatusCode::RESOURCE_EXHAUSTED, "QUEUE_FULL"));
  EXPECT_FALSE(Retryable(StatusCode::RESOURCE_EXHAUSTED, ""));
  EXPECT_TRUE(Retryable(StatusCode::ABORTED, "LOAN_CHANGING"));
  // The same request again would name the same stale version.
  EXPECT_FALSE(Retryable(StatusCode::ABORTED, "BORROWER_CHANGED"));
  EXPECT_FALSE(Retryable(StatusCode::ABORTED, ""));
  for (StatusCode code :
       {StatusCode::INVALID_ARGUMENT, StatusCode::FAILED_PRECONDITION, StatusCode::NOT_FOUND,
        StatusCode::ALREADY_EXISTS, StatusCode::PERMISSION_DENIED, StatusCode::DEADLINE_EXCEEDED,
        StatusCode::INTERNAL, StatusCode::DATA_LOSS}) {
    EXPECT_FALSE(Retryable(code, "X")) << static_cast<int>(code);
  }
}

TEST(RequestIdTest, RandomHexWithAPrefix) {
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    const std::string id = NewRequestId();
    ASSERT_EQ(id.size(), 36u);
    EXPECT_TRUE(id.starts_with("cli-"));
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 4), std::string::npos) << id;
    EXPECT_TRUE(IsValidRequestId(id));
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 100u);
  EXPECT_FALSE(IsValidRequestId(""));
  EXPECT_FALSE(IsValidRequestId("has space"));
  EXPECT_FALSE(IsValidRequestId(std::string(129, 'a')));
  EXPECT_FALSE(IsValidRequestId("付款-1"));
}

TEST(FieldNamesTest, RequestFieldsAsTheUserGaveThem) {
  EXPECT_EQ(FieldAsUserNamesIt("details.phone"), "--phone");
  EXPECT_EQ(FieldAsUserNamesIt("amount"), "--amount");
  EXPECT_EQ(FieldAsUserNamesIt("guarantors[1].national_id"), "--guarantor #2 national_id");
  EXPECT_EQ(FieldAsUserNamesIt("terms.limits[0].max_amount"),
            "limits[0].max_amount (product file)");
  EXPECT_EQ(FieldAsUserNamesIt("something.else"), "something.else");
}

class SettingsTest : public ::testing::Test {
 protected:
  GetEnv Env() {
    return [this](const std::string& name) -> std::optional<std::string> {
      auto it = env_.find(name);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
  }
  std::string Write(const std::string& name, const std::string& content, int mode = 0600) {
    const std::string path = dir_.Sub(name);
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << content;
    ::chmod(path.c_str(), static_cast<mode_t>(mode));
    return path;
  }

  TempDir dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(SettingsTest, DefaultsWithNothingConfigured) {
  env_["HOME"] = dir_.Sub("home");
  absl::StatusOr<ConnectionSettings> s = ResolveSettings({}, Env());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->server, "127.0.0.1:50051");
  EXPECT_EQ(s->as, "officer");
  EXPECT_TRUE(s->as_source.empty());
  EXPECT_TRUE(s->token_file.empty());
  EXPECT_TRUE(s->ca_file.empty());
  EXPECT_TRUE(s->profile.empty());
}

TEST_F(SettingsTest, FlagBeatsEnvironmentBeatsProfile) {
  env_["HOME"] = dir_.path();
  Write(".config/gongdai/profile.toml",
        "server = \"profile:1\"\nca_file = \"ca.pem\"\ntoken_file = \"~/tokens.toml\"\nas = "
        "\"cashier\"\n"
        "tls_server_name = \"ledger.example\"\n");
  absl::StatusOr<ConnectionSettings> s = ResolveSettings({}, Env());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->server, "profile:1");
  EXPECT_EQ(s->ca_file, dir_.Sub(".config/gongdai/ca.pem"));  // relative to the profile
  EXPECT_EQ(s->token_file, dir_.Sub("tokens.toml"));
  EXPECT_EQ(s->as, "cashier");
  EXPECT_EQ(s->as_source, "as in " + dir_.Sub(".config/gongdai/profile.toml"));
  EXPECT_EQ(s->tls_server_name, "ledger.example");

  env_["GONGDAI_SERVER"] = "env:2";
  env_["GONGDAI_AS"] = "approver";
  env_["GONGDAI_TOKEN_FILE"] = "";  // empty counts as unset
  s = ResolveSettings({}, Env());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->server, "env:2");
  EXPECT_EQ(s->as, "approver");
  EXPECT_EQ(s->as_source, "GONGDAI_AS");
  EXPECT_EQ(s->token_file, dir_.Sub("tokens.toml"));

  ConnectionFlags flags;
  flags.server = "flag:3";
  flags.token_file = "/etc/gongdai/token";
  s = ResolveSettings(flags, Env());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->server, "flag:3");
  EXPECT_EQ(s->token_file, "/etc/gongdai/token");
  EXPECT_EQ(s->as, "approver");
}

TEST_F(SettingsTest, ANamedProfileMustExistAndBeWellFormed) {
  ConnectionFlags flags;
  flags.profile = dir_.Sub("missing.toml");
  absl::StatusOr<ConnectionSettings> s = ResolveSettings(flags, Env());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);

  env_["GONGDAI_PROFILE"] = Write("typo.toml", "token = \"secret\"\n");
  s = ResolveSettings({}, Env());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.status().message()).find("unknown setting \"token\""), std::string::npos)
      << s.status();

  env_["GONGDAI_PROFILE"] = Write("number.toml", "server = 5\n");
  s = ResolveSettings({}, Env());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);

  flags.profile = "";
  flags.tls_server_name = "ledger.example";
  env_.erase("GONGDAI_PROFILE");
  s = ResolveSettings(flags, Env());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << "a server name needs TLS";
  EXPECT_NE(
      std::string(s.status().message()).find("a TLS server name (--tls-server-name) needs TLS"),
      std::string::npos)
      << s.status();
  flags.tls_server_name = "";
  env_["GONGDAI_TLS_SERVER_NAME"] = "ledger.example";
  s = ResolveSettings(flags, Env());
  EXPECT_NE(std::string(s.status().message()).find("a TLS server name (GONGDAI_TLS_SERVER_NAME)"),
            std::string::npos)
      << s.status();
}

TEST_F(SettingsTest, TokensFromAPlainFileOrADevelopmentTokensFile) {
  ConnectionSettings settings;
  settings.token_file = Write("token", "  gd_officer_abc123\n");
  absl::StatusOr<Credentials> c = LoadCredentials(settings);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->token, "gd_officer_abc123");
  EXPECT_EQ(c->source.find("gd_officer_abc123"), std::string::npos);

  settings.as = "cashier";  // a role makes no sense with a single token
  settings.as_source = "GONGDAI_AS";
  c = LoadCredentials(settings);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(std::string(c.status().message())
                .find("a role (cashier, from GONGDAI_AS) picks a token from a development tokens "
                      "file, but " +
                      settings.token_file + " holds a single token: leave the role out"),
            std::string::npos)
      << c.status();
  EXPECT_EQ(std::string(c.status().message()).find("abc123"), std::string::npos);

  settings.token_file =
      Write("dev-tokens.toml", "# comment\n[tokens]\nofficer = \"gd_o_1\"\ncashier = \"gd_c_2\"\n");
  settings.as = "cashier";
  c = LoadCredentials(settings);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->token, "gd_c_2");
  EXPECT_EQ(c->source, "the \"cashier\" token of " + settings.token_file);

  settings.as = "auditor";
  c = LoadCredentials(settings);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated);
  const std::string message(c.status().message());
  EXPECT_NE(message.find("cashier, officer"), std::string::npos) << message;
  EXPECT_EQ(message.find("gd_"), std::string::npos) << message;

  // Text that is neither: the error gives a line number, never the content.
  settings.token_file = Write("broken.toml", "[tokens]\nofficer = gd_secret_value\n");
  c = LoadCredentials(settings);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(c.status().message()).find("gd_secret_value"), std::string::npos)
      << c.status();

  settings.token_file = dir_.Sub("absent");
  EXPECT_EQ(LoadCredentials(settings).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(SettingsTest, WarnsWhenOthersCanReadTheTokenFile) {
  EXPECT_FALSE(TokenFilePermissionWarning(Write("private", "t", 0600)).has_value());
  EXPECT_TRUE(TokenFilePermissionWarning(Write("shared", "t", 0644)).has_value());
}

TEST(ProductFileTest, ReadsTermsAndRefusesMistakesByKey) {
  TempDir dir;
  const std::string path = dir.Sub("bank.toml");
  std::ofstream(path) << R"(product_id = "psbc-2020"
name = "庐陵工贷·邮储"
funding = "partner-bank"
bank_id = "psbc"
annual_rate = "0.0435"
day_count = "act-360"
term_months_min = 6
term_months_max = 24
methods = ["monthly", "bullet"]
grace_days = 3
dual_approval_above = 300000

[[limits]]
category = "model-worker"
max_amount = "300000"

[[limits]]
category = "small-enterprise"
max_amount = 500000
)";
  absl::StatusOr<ProductFile> file = ReadProductFile(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->product_id, "psbc-2020");
  const v1::ProductTermsInput& t = file->terms;
  EXPECT_EQ(t.funding(), v1::FUNDING_PARTNER_BANK);
  EXPECT_EQ(t.annual_rate(), "0.0435");
  EXPECT_EQ(t.day_count(), v1::DAY_COUNT_CONVENTION_ACT_360);
  ASSERT_EQ(t.methods_size(), 2);
  EXPECT_EQ(t.methods(1), v1::REPAYMENT_METHOD_BULLET);
  EXPECT_EQ(t.dual_approval_above(), "300000");
  ASSERT_EQ(t.limits_size(), 2);
  EXPECT_EQ(t.limits(1).category(), v1::BORROWER_CATEGORY_SMALL_ENTERPRISE);
  EXPECT_EQ(t.limits(1).max_amount(), "500000");

  const auto refused = [&](const std::string& content, const std::string& expected) {
    std::ofstream(path, std::ios::trunc) << content;
    absl::StatusOr<ProductFile> bad = ReadProductFile(path);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << content;
    EXPECT_NE(std::string(bad.status().message()).find(expected), std::string::npos)
        << bad.status();
  };
  refused("nmae = \"x\"\n", "nmae: unknown field");
  refused("funding = \"bank\"\n", "funding: \"bank\" is not one of union-fund|partner-bank");
  refused("annual_rate = 0.0435\n", "annual_rate: must be a string");
  refused("dual_approval_above = \"1,000\"\n", "thousands separators");
  refused("[[limits]]\ncategory = \"ordinary-member\"\nmax_amount = \"1.234\"\n",
          "limits[0].max_amount");
  refused("[[limits]]\ncategory = \"worker\"\n", "limits[0].category");
  refused("methods = \"monthly\"\n", "methods: must be a list");
  refused("name = \n", "at line 1");
}

}  // namespace
}  // namespace gongdai::client
