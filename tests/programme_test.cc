#include "engine/programme.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "engine/journal_format.h"
#include "engine/loan_math.h"
#include "engine/national_id.h"
#include "engine/replay.h"
#include "engine/status.h"
#include "engine/storage.h"
#include "engine/strings.h"
#include "tests/fault_fs.h"
#include "tests/programme_fixture.h"
#include "tests/raw_db.h"

namespace gongdai {
namespace {

using testing::kApprover;
using testing::kApprover2;
using testing::kCashier;
using testing::kOfficer;
using testing::kOfficer2;
using testing::kSupervisor;
using testing::NationalId;
using testing::ProgrammeTest;

std::vector<std::string> Fields(const absl::Status& status) {
  std::vector<std::string> fields;
  for (const FieldViolation& v : FieldViolationsOf(status)) fields.push_back(v.field);
  return fields;
}

// ---- National ID numbers ---------------------------------------------------------------

TEST(NationalId, AcceptsValidNumbersIncludingCheckX) {
  const Date today = *ParseDate("2020-06-30", "d");
  EXPECT_TRUE(ValidateNationalId("11010519491231002X", "id", today).ok());  // published example
  EXPECT_TRUE(ValidateNationalId(NationalId("19850612", 7), "id", today).ok());
}

TEST(NationalId, RefusesBadLengthCharactersBirthDateAndCheck) {
  const Date today = *ParseDate("2020-06-30", "d");
  for (const char* bad :
       {"11010519491231002", "11010519491231002XX", "1101051949123100 X", "11010519491231002x",
        "110105194912310021", "110105194913310028", "110105203001010027", "A1010519491231002X"}) {
    absl::Status status = ValidateNationalId(bad, "national_id", today);
    ASSERT_FALSE(status.ok()) << bad;
    EXPECT_EQ(FieldViolationsOf(status)[0].reason, "NATIONAL_ID_INVALID") << bad;
  }
  EXPECT_EQ(MaskNationalId("11010519491231002X"), "1101**********002X");
}

// ---- Products and the talent pool ------------------------------------------------------

TEST_F(ProgrammeTest, ProductTermsAreValidatedFieldByField) {
  v1::Event event;
  event.mutable_product_defined()->set_product_id("Bad Id");
  v1::ProductTerms* terms = event.mutable_product_defined()->mutable_terms();
  *terms = testing::BankTerms("0.0435");
  terms->set_annual_rate("4.35%");
  terms->set_term_months_min(12);
  terms->set_term_months_max(6);
  terms->mutable_limits(0)->set_max_amount_fen(0);
  CommandResult result = Run(kSupervisor, event);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fields(result.status),
            (std::vector<std::string>{"event.product_defined.product_id",
                                      "event.product_defined.terms.annual_rate",
                                      "event.product_defined.terms.limits[0].max_amount_fen",
                                      "event.product_defined.terms.term_months_max"}));
}

TEST_F(ProgrammeTest, ProductIsDefinedOnceAndAmendedAsAWhole) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  v1::Event again;
  again.mutable_product_defined()->set_product_id("fund-2020");
  *again.mutable_product_defined()->mutable_terms() = testing::UnionFundTerms();
  EXPECT_EQ(Run(kSupervisor, again).status.code(), absl::StatusCode::kAlreadyExists);
  v1::Event amend;
  amend.mutable_product_amended()->set_product_id("fund-2020");
  *amend.mutable_product_amended()->mutable_terms() = testing::UnionFundTerms();
  amend.mutable_product_amended()->mutable_terms()->set_grace_days(10);
  Ok(kSupervisor, amend);
  EXPECT_EQ(ledger_->GetProduct("fund-2020")->terms().grace_days(), 10);
  *amend.mutable_product_amended()->mutable_terms() = testing::BankTerms();
  EXPECT_EQ(ReasonOf(Run(kSupervisor, amend).status), "FUNDING_IS_FIXED");
}

// A command on a borrower or a product is answered with it as its own entry left it, not as
// a later command in the same batch left it. Two changes of one borrower's phone and two of
// a product's grace days are held back until the writer takes them as one batch.
TEST_F(ProgrammeTest, ABorrowerOrProductIsHandedOverAsItsEntryLeftIt) {
  const std::string borrower = Register("李秀英");
  DefineProduct("fund-2020", testing::UnionFundTerms());
  std::shared_ptr<PublishGate> gate = GatePublishing();
  const uint64_t before = ledger_->Head().sequence;
  gate->Hold(before + 1);
  int submitted = 0;
  auto submit = [&](const v1::Actor& actor, const v1::Event& event, uint64_t version = 0) {
    auto answer = std::make_shared<std::promise<CommandResult>>();
    std::future<CommandResult> answered = answer->get_future();
    Command command;
    command.request_id = Cat("handed-", ++submitted);
    command.actor = actor;
    command.event = event;
    command.expected_version = version;
    ledger_->Submit(std::move(command),
                    [answer](CommandResult result) { answer->set_value(std::move(result)); });
    return answered;
  };
  auto phone_change = [&](const char* phone) {
    v1::Event event;
    event.mutable_borrower_updated()->set_borrower_id(borrower);
    *event.mutable_borrower_updated()->mutable_details() = Details("李秀英");
    event.mutable_borrower_updated()->mutable_details()->set_phone(phone);
    return event;
  };
  auto grace_change = [&](int days) {
    v1::Event event;
    event.mutable_product_amended()->set_product_id("fund-2020");
    *event.mutable_product_amended()->mutable_terms() = testing::UnionFundTerms();
    event.mutable_product_amended()->mutable_terms()->set_grace_days(days);
    return event;
  };
  std::future<CommandResult> held, next, first_phone, second_phone, first_grace, second_grace;
  PublishGate::OpenOnExit opener{*gate};
  held = submit(kCashier, Contribute(1'000));
  ASSERT_TRUE(gate->WaitUntilHeld());
  // The next batch executes and waits for the committer; what comes meanwhile queues for
  // the one after, together.
  next = submit(kCashier, Contribute(2'000));
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  // The second change is made from the first's version (its entry, before + 3): in the
  // batch, the first has already changed the borrower when the second is decided.
  const uint64_t registered = ledger_->GetBorrower(borrower)->changed_sequence();
  first_phone = submit(kOfficer, phone_change("13907960001"), registered);
  second_phone = submit(kOfficer2, phone_change("13907960002"), before + 3);
  first_grace = submit(kSupervisor, grace_change(7));
  second_grace = submit(kSupervisor, grace_change(9));
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  gate->Open();
  for (std::future<CommandResult>* f : {&held, &next}) ASSERT_TRUE(f->get().status.ok());
  const CommandResult phone1 = first_phone.get(), phone2 = second_phone.get();
  const CommandResult grace1 = first_grace.get(), grace2 = second_grace.get();
  for (const CommandResult* r : {&phone1, &phone2, &grace1, &grace2})
    ASSERT_TRUE(r->status.ok()) << r->status;
  // The four changes were one batch: none of the first three ended one.
  const std::vector<uint64_t> ends = gate->BatchEnds();
  for (const CommandResult* r : {&phone1, &phone2, &grace1}) {
    EXPECT_EQ(std::count(ends.begin(), ends.end(), r->entry.sequence()), 0) << r->entry.sequence();
  }
  ASSERT_TRUE(phone1.borrower.has_value() && phone2.borrower.has_value());
  EXPECT_EQ(phone1.borrower->details().phone(), "13907960001");
  EXPECT_EQ(phone2.borrower->details().phone(), "13907960002");
  EXPECT_EQ(phone1.entry.sequence(), before + 3);
  EXPECT_EQ(phone1.borrower->changed_sequence(), before + 3);
  EXPECT_EQ(phone2.borrower->changed_sequence(), before + 4);
  ASSERT_TRUE(grace1.product.has_value() && grace2.product.has_value());
  EXPECT_EQ(grace1.product->terms().grace_days(), 7);
  EXPECT_EQ(grace2.product->terms().grace_days(), 9);
  EXPECT_FALSE(phone1.product.has_value());
  EXPECT_FALSE(grace1.borrower.has_value());
  // Now both show the last change.
  EXPECT_EQ(ledger_->GetBorrower(borrower)->details().phone(), "13907960002");
  EXPECT_EQ(ledger_->GetProduct("fund-2020")->terms().grace_days(), 9);
}

TEST_F(ProgrammeTest, BorrowerRegistrationValidatesEveryField) {
  v1::Event event;
  event.mutable_borrower_registered()->set_national_id("360802198506121234");  // bad check
  v1::BorrowerDetails* d = event.mutable_borrower_registered()->mutable_details();
  *d = Details("");
  d->set_phone("0796-123");
  d->set_category(static_cast<v1::BorrowerCategory>(42));
  CommandResult result = Run(kOfficer, event);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fields(result.status),
            (std::vector<std::string>{"event.borrower_registered.national_id",
                                      "event.borrower_registered.details.name",
                                      "event.borrower_registered.details.phone",
                                      "event.borrower_registered.details.category"}));
}

// Free text is grouped on as stored ("吉州区 " would be a county row of its own) and shown
// as stored: text that reads alike must be alike, so spaces around it and characters that
// cannot be seen are refused, each with its reason, and nothing is written.
TEST_F(ProgrammeTest, FreeTextWithSurroundingSpacesOrInvisibleCharactersIsRefused) {
  const struct {
    std::string county;
    std::string reason;
  } cases[] = {
      {"吉州区 ", "SURROUNDING_SPACE"},
      {" 吉州区", "SURROUNDING_SPACE"},
      {"吉州区\u3000", "SURROUNDING_SPACE"},    // the ideographic space
      {"\u00a0吉州区", "SURROUNDING_SPACE"},    // a no-break space
      {"吉州\u200b区", "INVISIBLE_CHARACTER"},  // a zero-width space
      {"吉州区\u2028", "INVISIBLE_CHARACTER"},  // a line separator
      {"\u202e区州吉", "INVISIBLE_CHARACTER"},  // a right-to-left override
      {"吉州区\u2066", "INVISIBLE_CHARACTER"},  // a direction isolate
      {"\ufeff吉州区", "INVISIBLE_CHARACTER"},  // a byte order mark
      {"吉州\u00ad区", "INVISIBLE_CHARACTER"},  // a soft hyphen
      {"吉州区\ufe00", "INVISIBLE_CHARACTER"},  // a variation selector
      {"吉州区\u3164", "INVISIBLE_CHARACTER"},  // a Hangul filler
      {"吉州区\t", "CONTROL_CHARACTER"},
      {"吉州区\u0085", "CONTROL_CHARACTER"},  // C1's next line
      {"吉州\xff区", "INVALID_UTF8"},
  };
  const uint64_t head = ledger_->Head().sequence;
  for (const auto& c : cases) {
    v1::Event event;
    event.mutable_borrower_registered()->set_national_id(NationalId("19850612", 1));
    *event.mutable_borrower_registered()->mutable_details() =
        Details("王建国", v1::BORROWER_CATEGORY_ORDINARY_MEMBER, c.county);
    CommandResult result = Run(kOfficer, event);
    EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument) << c.reason;
    const std::vector<FieldViolation> violations = FieldViolationsOf(result.status);
    ASSERT_EQ(violations.size(), 1u) << result.status;
    EXPECT_EQ(violations[0].field, "event.borrower_registered.details.county");
    EXPECT_EQ(violations[0].reason, c.reason) << result.status;
  }
  EXPECT_EQ(ledger_->Head().sequence, head);
  // Spaces inside text, and text in other scripts, are taken.
  const std::string borrower =
      Register("Ma Li", v1::BORROWER_CATEGORY_ORDINARY_MEMBER, "吉州区 文山街道");
  EXPECT_EQ(borrower, "B000001");
}

TEST_F(ProgrammeTest, SecondRegistrationOfANationalIdIsAlreadyExists) {
  v1::Event event;
  event.mutable_borrower_registered()->set_national_id(NationalId("19790101", 5));
  *event.mutable_borrower_registered()->mutable_details() = Details("李春华");
  const std::string first = Ok(kOfficer, event).event().borrower_registered().borrower_id();
  EXPECT_EQ(first, "B000001");
  CommandResult second = Run(kOfficer2, event);
  EXPECT_EQ(second.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReasonOf(second.status), "BORROWER_ALREADY_REGISTERED");
  EXPECT_NE(second.status.message().find("B000001"), absl::string_view::npos);
}

// An update replaces a borrower's details whole, so it names the version it was made from:
// a copy read before another change would otherwise undo that change without a word.
TEST_F(ProgrammeTest, ABorrowerUpdateMadeFromAnOlderVersionIsRefusedAndWritesNothing) {
  const std::string borrower = Register("李秀英");
  const uint64_t registered = ledger_->GetBorrower(borrower)->changed_sequence();
  EXPECT_EQ(registered, ledger_->GetBorrower(borrower)->registered_sequence());
  auto update = [&](const char* sector) {
    v1::Event event;
    event.mutable_borrower_updated()->set_borrower_id(borrower);
    *event.mutable_borrower_updated()->mutable_details() = Details("李秀英");
    event.mutable_borrower_updated()->mutable_details()->set_sector(sector);
    return event;
  };

  // Without a version: invalid, named.
  const CommandResult unversioned = Run(kOfficer, update("餐饮"));
  EXPECT_EQ(unversioned.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fields(unversioned.status), std::vector<std::string>{"expected_version"});

  // Two officers read the registered borrower; the first update lands.
  const v1::Entry first = Ok(kOfficer, update("餐饮"), "", registered);
  EXPECT_EQ(ledger_->GetBorrower(borrower)->changed_sequence(), first.sequence());

  // The second, made from the same read, is refused and writes nothing.
  const uint64_t head = ledger_->Head().sequence;
  const CommandResult stale = Run(kOfficer2, update("零售"), "", registered);
  EXPECT_EQ(stale.status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ReasonOf(stale.status), "BORROWER_CHANGED");
  EXPECT_NE(stale.status.message().find(Cat("version ", first.sequence())), absl::string_view::npos)
      << stale.status;
  EXPECT_EQ(ledger_->Head().sequence, head);
  EXPECT_EQ(ledger_->GetBorrower(borrower)->details().sector(), "餐饮");

  // A version the borrower has not reached is no change by someone else: named as such.
  const CommandResult ahead = Run(kOfficer2, update("零售"), "", first.sequence() + 100);
  EXPECT_EQ(ahead.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(ahead.status), "VERSION_UNKNOWN");
  EXPECT_EQ(ledger_->Head().sequence, head);

  // A change of status is a new version too.
  v1::Event suspend;
  suspend.mutable_talent_pool_status_changed()->set_borrower_id(borrower);
  suspend.mutable_talent_pool_status_changed()->set_status(v1::TALENT_POOL_STATUS_SUSPENDED);
  suspend.mutable_talent_pool_status_changed()->set_reason("会员资格审核中");
  const v1::Entry suspended = Ok(kSupervisor, suspend);
  EXPECT_EQ(ReasonOf(Run(kOfficer2, update("零售"), "", first.sequence()).status),
            "BORROWER_CHANGED");
  const v1::Entry second = Ok(kOfficer2, update("零售"), "", suspended.sequence());
  EXPECT_EQ(ledger_->GetBorrower(borrower)->changed_sequence(), second.sequence());
  EXPECT_EQ(ledger_->GetBorrower(borrower)->details().sector(), "零售");

  // Nor is one from before the borrower was registered: the first borrower's version,
  // on one registered after it.
  const std::string later = Register("王芳");
  const uint64_t later_registered = ledger_->GetBorrower(later)->registered_sequence();
  ASSERT_LT(registered, later_registered);
  v1::Event update_later = update("零售");
  update_later.mutable_borrower_updated()->set_borrower_id(later);
  *update_later.mutable_borrower_updated()->mutable_details() = Details("王芳");
  const uint64_t head_before = ledger_->Head().sequence;
  const CommandResult before = Run(kOfficer2, update_later, "", registered);
  EXPECT_EQ(before.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(before.status), "VERSION_UNKNOWN");
  EXPECT_NE(before.status.message().find(Cat("registered at version ", later_registered)),
            absl::string_view::npos)
      << before.status;
  EXPECT_EQ(ledger_->Head().sequence, head_before);

  // Nor is an entry between its registration and its current version that did not change
  // it (here another borrower's registration); the versions it did have are changes.
  const std::string other = Register("赵敏");
  const uint64_t other_registered = ledger_->GetBorrower(other)->registered_sequence();
  const v1::Entry later_updated = Ok(kOfficer, update_later, "", later_registered);
  ASSERT_LT(other_registered, later_updated.sequence());
  const CommandResult between = Run(kOfficer2, update_later, "", other_registered);
  EXPECT_EQ(between.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(between.status), "VERSION_UNKNOWN");
  EXPECT_NE(between.status.message().find(Cat("never been at version ", other_registered)),
            absl::string_view::npos)
      << between.status;
  const CommandResult past = Run(kOfficer2, update_later, "", later_registered);
  EXPECT_EQ(past.status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ReasonOf(past.status), "BORROWER_CHANGED");
  EXPECT_EQ(ledger_->GetBorrower(later)->changed_sequence(), later_updated.sequence());

  // A version on any other command is refused as not applicable.
  EXPECT_EQ(Fields(Run(kSupervisor, suspend, "", second.sequence()).status),
            std::vector<std::string>{"expected_version"});
}

// A book written before borrowers had versions has none stored: on open its derived state
// is rebuilt, which gives every borrower its version, so that updates can name it.
TEST_F(ProgrammeTest, ABookWithoutBorrowerVersionsGetsThemWhenItOpens) {
  const std::string borrower = Register("李秀英");
  v1::Event update;
  update.mutable_borrower_updated()->set_borrower_id(borrower);
  *update.mutable_borrower_updated()->mutable_details() = Details("李秀英");
  update.mutable_borrower_updated()->mutable_details()->set_sector("餐饮");
  const v1::Entry updated =
      Ok(kOfficer, update, "", ledger_->GetBorrower(borrower)->changed_sequence());
  ledger_.reset();
  {
    testing::RawDb raw(dir_.path());
    v1::BorrowerState stored;
    ASSERT_TRUE(stored.ParseFromString(*raw.Get("projections", BorrowerKey(borrower))));
    ASSERT_EQ(stored.changed_sequence(), updated.sequence());
    stored.clear_changed_sequence();  // as the engine before versions wrote it
    raw.Put("projections", BorrowerKey(borrower), stored.SerializeAsString());
    raw.Put("meta", "projections", "gongdai-projections-5");
  }
  Reopen();
  EXPECT_TRUE(ledger_->ProjectionsRebuiltOnOpen());
  EXPECT_EQ(ledger_->GetBorrower(borrower)->changed_sequence(), updated.sequence());
  update.mutable_borrower_updated()->mutable_details()->set_sector("零售");
  Ok(kOfficer, update, "", updated.sequence());
}

// Derived state of another version is rebuilt on open even with no entries, where the
// rebuild is a clearing: a balance put into a database whose journal is empty must not
// outlive its open (an audit of such a copy does not compare it).
TEST_F(ProgrammeTest, DerivedStateOfAnotherVersionIsClearedWhenTheJournalIsEmpty) {
  ASSERT_EQ(ledger_->Head().sequence, 0u);
  ledger_.reset();
  v1::AccountState planted;
  planted.set_balance_fen(100'000'000);
  {
    testing::RawDb raw(dir_.path());
    raw.Put("projections", "a/union:fund:cash", planted.SerializeAsString());
    raw.Put("request_ids", "a-request-never-made", SequenceKey(1));
    raw.Put("meta", "projections", "gongdai-projections-5");
  }
  Reopen();
  EXPECT_FALSE(ledger_->ProjectionsRebuiltOnOpen());  // nothing to rebuild from
  EXPECT_EQ(ledger_->GetBalance("union:fund:cash")->fen(), 0);
  ledger_.reset();
  {
    testing::RawDb raw(dir_.path());
    EXPECT_FALSE(raw.Get("projections", "a/union:fund:cash").has_value());
    EXPECT_FALSE(raw.Get("request_ids", "a-request-never-made").has_value());
    EXPECT_EQ(raw.Get("meta", "projections"), std::string(kProjectionsVersion));
  }
  Reopen();
}

TEST_F(ProgrammeTest, OnlyActiveMembersMayApply) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  const std::string borrower = Register("王建国");
  v1::Event suspend;
  suspend.mutable_talent_pool_status_changed()->set_borrower_id(borrower);
  suspend.mutable_talent_pool_status_changed()->set_status(v1::TALENT_POOL_STATUS_SUSPENDED);
  suspend.mutable_talent_pool_status_changed()->set_reason("会员资格审核中");
  Ok(kSupervisor, suspend);
  CommandResult refused = Run(kOfficer, Application(borrower, "fund-2020", 5'000'000, 12));
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused.status), "BORROWER_NOT_ACTIVE");
  suspend.mutable_talent_pool_status_changed()->set_status(v1::TALENT_POOL_STATUS_ACTIVE);
  Ok(kSupervisor, suspend);
  EXPECT_TRUE(Run(kOfficer, Application(borrower, "fund-2020", 5'000'000, 12)).status.ok());
}

// A refusal: FAILED_PRECONDITION for `reason`, its message saying `says`, and the
// journal still ending at `head`.
void ExpectRefused(const CommandResult& result, const std::string& reason, const std::string& says,
                   uint64_t head, const Ledger& ledger) {
  EXPECT_EQ(result.status.code(), absl::StatusCode::kFailedPrecondition) << result.status;
  EXPECT_EQ(ReasonOf(result.status), reason) << result.status;
  EXPECT_NE(result.status.message().find(says), absl::string_view::npos) << result.status;
  EXPECT_EQ(ledger.Head().sequence, head);
}

// An application dated before its borrower joined the talent pool would report a loan to
// someone not yet a member for that period.
TEST_F(ProgrammeTest, AnApplicationIsNotDatedBeforeItsBorrowersRegistration) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  const std::string borrower = Register("王建国");  // on 2020-01-01
  const uint64_t head = ledger_->Head().sequence;
  CommandResult early =
      Run(kOfficer, Application(borrower, "fund-2020", 5'000'000, 12), "2019-12-31");
  ExpectRefused(early, "BEFORE_REGISTRATION", "registration on 2020-01-01", head, *ledger_);
  EXPECT_TRUE(
      Run(kOfficer, Application(borrower, "fund-2020", 5'000'000, 12), "2020-01-01").status.ok());
}

// Nor before its product was defined: no terms were in force to check it against. The
// definition's date survives a rebuild of the projections from the journal.
TEST_F(ProgrammeTest, AnApplicationIsNotDatedBeforeItsProductsDefinition) {
  SetToday("2020-03-01");
  const std::string borrower = RegisterOn("2020-01-01", "王建国");
  DefineProduct("fund-2020", testing::UnionFundTerms());  // on 2020-03-01
  const uint64_t head = ledger_->Head().sequence;
  CommandResult early =
      Run(kOfficer, Application(borrower, "fund-2020", 5'000'000, 12), "2020-02-29");
  ExpectRefused(early, "BEFORE_PRODUCT", "product fund-2020's definition on 2020-03-01", head,
                *ledger_);

  absl::StatusOr<std::optional<ProjectionMismatch>> rebuilt =
      ledger_->CompareProjectionsWithRebuild();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_FALSE(rebuilt->has_value());
  EXPECT_EQ(ledger_->GetProduct("fund-2020")->versions(0).from_date(), "2020-03-01");
  EXPECT_TRUE(
      Run(kOfficer, Application(borrower, "fund-2020", 5'000'000, 12), "2020-03-01").status.ok());
}

// An application is checked against, and takes, the terms in force on its date, not the
// ones an amendment brought in after it; an amendment cannot be dated before the terms in
// force.
TEST_F(ProgrammeTest, AnApplicationTakesTheTermsInForceOnItsDate) {
  SetToday("2020-03-01");
  const std::string borrower = RegisterOn("2020-01-01", "王建国");
  DefineProduct("fund-2020", testing::UnionFundTerms());  // 100,000 yuan, 5 days' grace
  SetToday("2020-06-01");
  v1::Event amend;
  amend.mutable_product_amended()->set_product_id("fund-2020");
  *amend.mutable_product_amended()->mutable_terms() = testing::UnionFundTerms();
  amend.mutable_product_amended()->mutable_terms()->mutable_limits(0)->set_max_amount_fen(
      15'000'000);
  amend.mutable_product_amended()->mutable_terms()->set_grace_days(10);
  Ok(kSupervisor, amend);  // on 2020-06-01: 150,000 yuan, 10 days' grace

  CommandResult before =
      Run(kOfficer, Application(borrower, "fund-2020", 12'000'000, 12), "2020-05-31");
  EXPECT_EQ(ReasonOf(before.status), "EXCEEDS_PRODUCT_LIMIT") << before.status;
  EXPECT_NE(before.status.message().find("limit of 100000.00"), absl::string_view::npos)
      << before.status;
  CommandResult earlier =
      Run(kOfficer, Application(borrower, "fund-2020", 5'000'000, 12), "2020-05-31");
  ASSERT_TRUE(earlier.status.ok()) << earlier.status;
  EXPECT_EQ(Loan(earlier.entry.event().application_submitted().loan_id()).grace_days(), 5);
  CommandResult after =
      Run(kOfficer, Application(borrower, "fund-2020", 12'000'000, 12), "2020-06-01");
  ASSERT_TRUE(after.status.ok()) << after.status;
  EXPECT_EQ(Loan(after.entry.event().application_submitted().loan_id()).grace_days(), 10);

  const uint64_t head = ledger_->Head().sequence;
  CommandResult backdated = Run(kSupervisor, amend, "2020-05-15");
  ExpectRefused(backdated, "BEFORE_PRODUCT_TERMS", "in force from 2020-06-01", head, *ledger_);

  absl::StatusOr<std::optional<ProjectionMismatch>> rebuilt =
      ledger_->CompareProjectionsWithRebuild();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_FALSE(rebuilt->has_value());
}

// Applications dated from an amendment's date on take its terms, so an amendment dated on
// or before an application already recorded would contradict the terms that application
// took.
TEST_F(ProgrammeTest, AnAmendmentIsDatedAfterTheApplicationsItWouldChange) {
  SetToday("2020-03-01");
  const std::string borrower = RegisterOn("2020-01-01", "王建国");
  DefineProduct("fund-2020", testing::UnionFundTerms());  // 100,000 yuan, 5 days' grace
  SetToday("2020-07-10");
  CommandResult applied =
      Run(kOfficer, Application(borrower, "fund-2020", 9'000'000, 12), "2020-07-05");
  ASSERT_TRUE(applied.status.ok()) << applied.status;
  v1::Event amend;
  amend.mutable_product_amended()->set_product_id("fund-2020");
  *amend.mutable_product_amended()->mutable_terms() = testing::UnionFundTerms();
  amend.mutable_product_amended()->mutable_terms()->mutable_limits(0)->set_max_amount_fen(
      5'000'000);
  amend.mutable_product_amended()->mutable_terms()->set_grace_days(0);
  const uint64_t head = ledger_->Head().sequence;
  for (const char* date : {"2020-07-01", "2020-07-05"}) {
    ExpectRefused(Run(kSupervisor, amend, date), "BEFORE_PRODUCT_APPLICATION",
                  "not after 2020-07-05, the date of the latest application", head, *ledger_);
  }
  // An application dated earlier than the latest one does not move the mark back.
  ASSERT_TRUE(
      Run(kOfficer, Application(borrower, "fund-2020", 1'000'000, 12), "2020-06-01").status.ok());
  Ok(kSupervisor, amend, "2020-07-06");
  const std::string loan = applied.entry.event().application_submitted().loan_id();
  EXPECT_EQ(Loan(loan).amount_fen(), 9'000'000);
  EXPECT_EQ(Loan(loan).grace_days(), 5);
  EXPECT_EQ(
      ReasonOf(
          Run(kOfficer, Application(borrower, "fund-2020", 9'000'000, 12), "2020-07-06").status),
      "EXCEEDS_PRODUCT_LIMIT");

  absl::StatusOr<std::optional<ProjectionMismatch>> rebuilt =
      ledger_->CompareProjectionsWithRebuild();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_FALSE(rebuilt->has_value());
  EXPECT_EQ(ledger_->GetProduct("fund-2020")->last_application_date(), "2020-07-05");
}

// A borrower's history is kept in date order, as a loan's is: a change dated before its
// registration or its latest change is refused (an auditor's replay as of a date before
// the registration would otherwise meet a change to a borrower not yet registered).
TEST_F(ProgrammeTest, ABorrowersChangesAreNotDatedBeforeItsHistory) {
  SetToday("2020-06-30");
  const std::string borrower = RegisterOn("2020-06-01", "李秀英");
  v1::Event suspend;
  suspend.mutable_talent_pool_status_changed()->set_borrower_id(borrower);
  suspend.mutable_talent_pool_status_changed()->set_status(v1::TALENT_POOL_STATUS_SUSPENDED);
  suspend.mutable_talent_pool_status_changed()->set_reason("会员资格审核中");
  v1::Event update;
  update.mutable_borrower_updated()->set_borrower_id(borrower);
  *update.mutable_borrower_updated()->mutable_details() = Details("李秀英");
  update.mutable_borrower_updated()->mutable_details()->set_sector("餐饮");

  uint64_t head = ledger_->Head().sequence;
  const uint64_t registered = head;
  ExpectRefused(Run(kSupervisor, suspend, "2020-05-01"), "BUSINESS_DATE_BEFORE_BORROWER_HISTORY",
                "before borrower " + borrower + "'s latest change (2020-06-01)", head, *ledger_);
  ExpectRefused(Run(kOfficer, update, "2020-05-31", registered),
                "BUSINESS_DATE_BEFORE_BORROWER_HISTORY", "latest change (2020-06-01)", head,
                *ledger_);
  const uint64_t suspended = Ok(kSupervisor, suspend, "2020-06-10").sequence();
  head = ledger_->Head().sequence;
  v1::Event reinstate = suspend;
  reinstate.mutable_talent_pool_status_changed()->set_status(v1::TALENT_POOL_STATUS_ACTIVE);
  ExpectRefused(Run(kSupervisor, reinstate, "2020-06-09"), "BUSINESS_DATE_BEFORE_BORROWER_HISTORY",
                "latest change (2020-06-10)", head, *ledger_);
  Ok(kOfficer, update, "2020-06-10", suspended);
  Ok(kSupervisor, reinstate, "2020-06-11");

  absl::StatusOr<std::optional<ProjectionMismatch>> rebuilt =
      ledger_->CompareProjectionsWithRebuild();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_FALSE(rebuilt->has_value());
  EXPECT_EQ(ledger_->GetBorrower(borrower)->changed_date(), "2020-06-11");
}

// Applications belong to a borrower's history too. An application takes the borrower's
// status, category and county as they are: dated before the latest change it would take
// them as they were not yet. A change dated before an application already accepted would
// say the borrower was, say, suspended when the application was taken from them.
TEST_F(ProgrammeTest, ABorrowersChangesAndApplicationsKeepOneAnotherInDateOrder) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  SetToday("2020-06-30");
  const std::string borrower = RegisterOn("2020-06-01", "李秀英");
  v1::Event update;
  update.mutable_borrower_updated()->set_borrower_id(borrower);
  *update.mutable_borrower_updated()->mutable_details() = Details("李秀英");
  update.mutable_borrower_updated()->mutable_details()->set_sector("餐饮");
  const uint64_t updated = Ok(kOfficer, update, "2020-06-10", ledger_->Head().sequence).sequence();
  uint64_t head = ledger_->Head().sequence;
  ExpectRefused(Run(kOfficer, Application(borrower, "fund-2020", 5'000'000, 12), "2020-06-09"),
                "BUSINESS_DATE_BEFORE_BORROWER_HISTORY", "latest change (2020-06-10)", head,
                *ledger_);
  Ok(kOfficer, Application(borrower, "fund-2020", 5'000'000, 12), "2020-06-20");
  // An earlier application than the latest is still taken: applications need no order.
  Ok(kOfficer, Application(borrower, "fund-2020", 3'000'000, 12), "2020-06-15");
  EXPECT_EQ(ledger_->GetBorrower(borrower)->last_application_date(), "2020-06-20");
  head = ledger_->Head().sequence;
  v1::Event suspend;
  suspend.mutable_talent_pool_status_changed()->set_borrower_id(borrower);
  suspend.mutable_talent_pool_status_changed()->set_status(v1::TALENT_POOL_STATUS_SUSPENDED);
  suspend.mutable_talent_pool_status_changed()->set_reason("会员资格审核中");
  ExpectRefused(Run(kSupervisor, suspend, "2020-06-19"), "BUSINESS_DATE_BEFORE_BORROWER_HISTORY",
                "before borrower " + borrower + "'s latest application (2020-06-20)", head,
                *ledger_);
  // The applications left the borrower's version (its latest change) as it was.
  EXPECT_EQ(ledger_->GetBorrower(borrower)->changed_sequence(), updated);
  ExpectRefused(Run(kOfficer, update, "2020-06-19", updated),
                "BUSINESS_DATE_BEFORE_BORROWER_HISTORY", "latest application (2020-06-20)", head,
                *ledger_);
  Ok(kSupervisor, suspend, "2020-06-20");
  EXPECT_EQ(ledger_->GetBorrower(borrower)->changed_date(), "2020-06-20");

  absl::StatusOr<std::optional<ProjectionMismatch>> rebuilt =
      ledger_->CompareProjectionsWithRebuild();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_FALSE(rebuilt->has_value());
}

// A reversal comes after the entry it reverses: a contribution reversed on a date before
// it came in would leave the fund below zero on the dates between.
TEST_F(ProgrammeTest, AReversalIsNotDatedBeforeTheEntryItReverses) {
  SetToday("2020-07-10");
  const uint64_t contribution = Ok(kCashier, Contribute(50'000), "2020-07-01").sequence();
  const uint64_t head = ledger_->Head().sequence;
  ExpectRefused(Run(kSupervisor, Reverse(contribution), "2020-03-01"), "BEFORE_REVERSED_ENTRY",
                "before entry " + std::to_string(contribution) + "'s own (2020-07-01)", head,
                *ledger_);
  Ok(kSupervisor, Reverse(contribution), "2020-07-01");
  EXPECT_EQ(Balance("union:fund:cash"), 0);
}

TEST_F(ProgrammeTest, ApplicationsOutsideTheProductAreRefusedWithTheirReason) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  const std::string member = Register("王建国");
  const std::string enterprise = Register("吉安绿源", v1::BORROWER_CATEGORY_SMALL_ENTERPRISE);
  EXPECT_EQ(ReasonOf(Run(kOfficer, Application(member, "fund-2020", 10'000'001, 12)).status),
            "EXCEEDS_PRODUCT_LIMIT");
  EXPECT_EQ(ReasonOf(Run(kOfficer, Application(member, "fund-2020", 5'000'000, 48)).status),
            "TERM_OUTSIDE_PRODUCT_LIMITS");
  EXPECT_EQ(ReasonOf(Run(kOfficer, Application(enterprise, "fund-2020", 5'000'000, 12)).status),
            "CATEGORY_NOT_ELIGIBLE");
  v1::ProductTerms bullet_only = testing::UnionFundTerms();
  bullet_only.clear_methods();
  bullet_only.add_methods(v1::REPAYMENT_METHOD_BULLET);
  DefineProduct("bullet", bullet_only);
  EXPECT_EQ(ReasonOf(Run(kOfficer, Application(member, "bullet", 5'000'000, 12)).status),
            "METHOD_NOT_ALLOWED");
  EXPECT_EQ(ReasonOf(Run(kOfficer, Application("B000099", "fund-2020", 5'000'000, 12)).status),
            "BORROWER_NOT_FOUND");
  EXPECT_TRUE(Run(kOfficer, Application(member, "fund-2020", 10'000'000, 12)).status.ok());
}

// ---- Four eyes ------------------------------------------------------------------------

TEST_F(ProgrammeTest, SelfApprovalIsRefused) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  const std::string loan = Submit(Register("王建国"), "fund-2020", 5'000'000, 12);
  // An officer who also holds the approver role still cannot approve what they submitted.
  CommandResult self = Run(testing::Person("officer.liu", "approver"), Approve(loan));
  EXPECT_EQ(self.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(self.status), "SELF_APPROVAL_FORBIDDEN");
  EXPECT_EQ(Loan(loan).position().status(), v1::LOAN_STATUS_SUBMITTED);
  EXPECT_EQ(ReasonOf(Run(kCashier, Approve(loan)).status), "APPROVER_ROLE_REQUIRED");
  Ok(kApprover, Approve(loan));
  EXPECT_EQ(Loan(loan).position().status(), v1::LOAN_STATUS_APPROVED);
  EXPECT_EQ(Loan(loan).approvals(0).principal_id(), "approver.wang");
}

TEST_F(ProgrammeTest, LargeLoanNeedsTwoDifferentApprovers) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  const std::string loan =
      Submit(Register("黄师傅", v1::BORROWER_CATEGORY_MODEL_WORKER), "fund-2020", 30'000'000, 24);
  EXPECT_EQ(Loan(loan).approvals_required(), 2);
  v1::Entry first = Ok(kApprover, Approve(loan));
  EXPECT_EQ(first.event().approval_granted().approvals(), 1);
  EXPECT_EQ(Loan(loan).position().status(), v1::LOAN_STATUS_SUBMITTED);
  EXPECT_EQ(ReasonOf(Run(kApprover, Approve(loan)).status), "DUPLICATE_APPROVAL");
  Ok(kApprover2, Approve(loan));
  EXPECT_EQ(Loan(loan).position().status(), v1::LOAN_STATUS_APPROVED);
  // At the threshold itself one approval is enough.
  const std::string small = Submit(Register("小李"), "fund-2020", 10'000'000, 12);
  EXPECT_EQ(Loan(small).approvals_required(), 1);
}

TEST_F(ProgrammeTest, RejectWithdrawAndRevokeFollowTheStateMachine) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  const std::string borrower = Register("王建国");
  const std::string rejected = Submit(borrower, "fund-2020", 5'000'000, 12);
  v1::Event reject;
  reject.mutable_application_rejected()->set_loan_id(rejected);
  reject.mutable_application_rejected()->set_reason("经营计划不完整");
  Ok(kApprover, reject);
  EXPECT_EQ(Loan(rejected).position().status(), v1::LOAN_STATUS_REJECTED);
  EXPECT_EQ(Loan(rejected).closed_by().note(), "经营计划不完整");
  EXPECT_EQ(ReasonOf(Run(kApprover2, Approve(rejected)).status), "INVALID_LOAN_STATE");

  const std::string revoked = Submit(borrower, "fund-2020", 5'000'000, 12);
  Ok(kApprover, Approve(revoked));
  v1::Event revoke;
  revoke.mutable_approval_revoked()->set_loan_id(revoked);
  revoke.mutable_approval_revoked()->set_reason("担保人撤回");
  Ok(kSupervisor, revoke);
  EXPECT_EQ(Loan(revoked).position().status(), v1::LOAN_STATUS_SUBMITTED);
  EXPECT_EQ(Loan(revoked).approvals_size(), 0);
  EXPECT_EQ(ReasonOf(Run(kSupervisor, revoke).status), "NOTHING_TO_REVOKE");

  v1::Event withdraw;
  withdraw.mutable_application_withdrawn()->set_loan_id(revoked);
  withdraw.mutable_application_withdrawn()->set_reason("申请人放弃");
  Ok(kOfficer, withdraw);
  EXPECT_EQ(Loan(revoked).position().status(), v1::LOAN_STATUS_WITHDRAWN);
  EXPECT_EQ(ReasonOf(Run(kCashier, Disburse(revoked)).status), "INVALID_LOAN_STATE");
}

// ---- Disbursement and schedules --------------------------------------------------------

TEST(Schedule, InstallmentsSumToPrincipalForEveryTerm) {
  const Date start = *ParseDate("2020-01-31", "d");
  for (int64_t amount :
       {int64_t{1}, int64_t{99}, int64_t{10'000'000}, int64_t{30'000'001}, int64_t{50'000'000}}) {
    for (int term = 1; term <= 120; ++term) {
      absl::StatusOr<std::vector<v1::Installment>> schedule =
          BuildSchedule(start, amount, term, v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
      ASSERT_TRUE(schedule.ok());
      ASSERT_EQ(schedule->size(), static_cast<size_t>(term));
      int64_t sum = 0;
      for (const v1::Installment& i : *schedule) sum += i.principal_fen();
      EXPECT_EQ(sum, amount) << "term " << term;
      EXPECT_EQ(schedule->back().principal_fen(), amount / term + amount % term);
    }
  }
}

TEST_F(ProgrammeTest, ScheduleClampsToMonthEnd) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  Ok(kCashier, Contribute(100'000'000));
  SetToday("2020-01-31");
  const std::string loan = ActiveLoan(Register("王建国"), "fund-2020", 1'000'000, 4);
  const v1::LoanState state = Loan(loan);
  ASSERT_EQ(state.position().schedule_size(), 4);
  EXPECT_EQ(state.position().schedule(0).due_date(), "2020-02-29");
  EXPECT_EQ(state.position().schedule(1).due_date(), "2020-03-31");
  EXPECT_EQ(state.position().schedule(2).due_date(), "2020-04-30");
  EXPECT_EQ(state.position().schedule(3).due_date(), "2020-05-31");
  for (const v1::Installment& i : state.position().schedule())
    EXPECT_EQ(i.principal_fen(), 250'000);
  const std::string bullet =
      ActiveLoan(Register("李四"), "fund-2020", 1'000'000, 13, v1::REPAYMENT_METHOD_BULLET);
  ASSERT_EQ(Loan(bullet).position().schedule_size(), 1);
  EXPECT_EQ(Loan(bullet).position().schedule(0).due_date(), "2021-02-28");
}

TEST_F(ProgrammeTest, UnionFundLoanCannotExceedTheFundsCash) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  Ok(kCashier, Contribute(4'000'000));
  const std::string loan = Submit(Register("王建国"), "fund-2020", 5'000'000, 12);
  Ok(kApprover, Approve(loan));
  CommandResult refused = Run(kCashier, Disburse(loan));
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused.status), "FUND_INSUFFICIENT");
  EXPECT_EQ(Balance("union:fund:cash"), 4'000'000);
  Ok(kCashier, Contribute(1'000'000));
  v1::Entry disbursed = Ok(kCashier, Disburse(loan));
  EXPECT_EQ(Balance("union:fund:cash"), 0);
  EXPECT_EQ(Balance("loan:" + std::string("l000001") + ":principal"), 5'000'000);
  EXPECT_EQ(disbursed.event().loan_disbursed().schedule_size(), 12);
}

TEST_F(ProgrammeTest, BankLoanRecordsTheBanksPrincipalNotTheFunds) {
  DefineProduct("psbc-2020", testing::BankTerms());
  const std::string loan = ActiveLoan(Register("王建国"), "psbc-2020", 10'000'000, 12);
  EXPECT_EQ(Balance("union:fund:cash"), 0);
  EXPECT_EQ(Balance("loan:l000001:principal"), 10'000'000);
  EXPECT_EQ(Balance("bank:psbc:principal_lent"), -10'000'000);
  EXPECT_EQ(Loan(loan).funding(), v1::FUNDING_PARTNER_BANK);
}

// ---- Repayments ------------------------------------------------------------------------

class RepaymentTest : public ProgrammeTest {
 protected:
  void SetUp() override {
    ProgrammeTest::SetUp();
    DefineProduct("fund-2020", testing::UnionFundTerms());
    Ok(kCashier, Contribute(100'000'000));
    SetToday("2020-01-15");
    loan_ = ActiveLoan(Register("王建国"), "fund-2020", 1'200'000, 12);  // 100,000 fen a month
  }
  // A cashier's repayment of `amount` on the loan, under the bank's reference.
  Command Repayment(const std::string& request_id, int64_t amount) const {
    Command command;
    command.request_id = request_id;
    command.actor = kCashier;
    command.event = Repay(loan_, amount);
    return command;
  }
  std::string loan_;
};

TEST_F(RepaymentTest, RepaymentsGoToTheOldestUnpaidInstallmentFirst) {
  SetToday("2020-02-20");
  v1::Entry entry = Ok(kCashier, Repay(loan_, 150'000));
  const auto& allocations = entry.event().repayment_recorded().allocations();
  ASSERT_EQ(allocations.size(), 2);
  EXPECT_EQ(allocations[0].installment(), 1);
  EXPECT_EQ(allocations[0].principal_fen(), 100'000);
  EXPECT_EQ(allocations[1].installment(), 2);
  EXPECT_EQ(allocations[1].principal_fen(), 50'000);
  Ok(kCashier, Repay(loan_, 70'000));
  const v1::LoanState state = Loan(loan_);
  EXPECT_EQ(state.position().paid_fen(1), 100'000);
  EXPECT_EQ(state.position().paid_fen(2), 20'000);
  EXPECT_EQ(state.position().principal_outstanding_fen(), 1'200'000 - 220'000);
  EXPECT_EQ(Balance("union:fund:cash"), 100'000'000 - 1'200'000 + 220'000);
}

TEST_F(RepaymentTest, RetryOfARepaymentReturnsTheOriginalAllocation) {
  Command command = Repayment("bank-ref-20200120-001", 150'000);
  CommandResult first = ledger_->SubmitAndWait(command);
  ASSERT_TRUE(first.status.ok()) << first.status;
  CommandResult again = ledger_->SubmitAndWait(command);
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.entry.hash(), first.entry.hash());
  command.event.mutable_repayment_recorded()->set_amount_fen(160'000);
  CommandResult different = ledger_->SubmitAndWait(command);
  EXPECT_EQ(different.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(different.status.message().find("fields that differ: amount"), absl::string_view::npos)
      << different.status;
  EXPECT_EQ(Loan(loan_).position().principal_repaid_fen(), 150'000);
}

TEST_F(RepaymentTest, EachWriteAnswersWithTheLoanAsItsEntryLeftIt) {
  // Two repayments submitted together land in one batch; each answer carries the loan
  // as its own entry left it, not as the batch did.
  SetToday("2020-02-20");
  std::vector<std::future<CommandResult>> answers;
  for (int64_t amount : {150'000, 70'000}) {
    auto promise = std::make_shared<std::promise<CommandResult>>();
    answers.push_back(promise->get_future());
    ledger_->Submit(Repayment("bank-ref-" + std::to_string(amount), amount),
                    [promise](CommandResult r) { promise->set_value(std::move(r)); });
  }
  CommandResult first = answers[0].get();
  CommandResult second = answers[1].get();
  ASSERT_TRUE(first.status.ok()) << first.status;
  ASSERT_TRUE(second.status.ok()) << second.status;
  ASSERT_TRUE(first.loan.has_value());
  ASSERT_TRUE(second.loan.has_value());
  EXPECT_EQ(first.loan->position().principal_outstanding_fen(), 1'200'000 - 150'000);
  EXPECT_EQ(first.loan->position().last_financial_sequence(), first.entry.sequence());
  EXPECT_EQ(second.loan->position().principal_outstanding_fen(), 1'200'000 - 220'000);
  EXPECT_EQ(second.loan->SerializeAsString(), Loan(loan_).SerializeAsString());

  // A retry answers with the original entry and no loan (the caller reads the loan now).
  CommandResult again = ledger_->SubmitAndWait(Repayment("bank-ref-150000", 150'000));
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_TRUE(again.replayed);
  EXPECT_FALSE(again.loan.has_value());
  // An entry about no loan carries none.
  CommandResult contribution = Run(kCashier, Contribute(1'000));
  ASSERT_TRUE(contribution.status.ok()) << contribution.status;
  EXPECT_FALSE(contribution.loan.has_value());
}

TEST_F(RepaymentTest, RepaymentBeyondOutstandingIsRefused) {
  CommandResult refused = Run(kCashier, Repay(loan_, 1'200'001));
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused.status), "EXCEEDS_OUTSTANDING");
  EXPECT_NE(refused.status.message().find("12000.00"), absl::string_view::npos) << refused.status;
  EXPECT_EQ(Loan(loan_).position().principal_outstanding_fen(), 1'200'000);
}

TEST_F(RepaymentTest, EarlyFullRepaymentClosesTheLoan) {
  SetToday("2020-03-01");
  v1::Entry entry = Ok(kCashier, Repay(loan_, 1'200'000));
  EXPECT_TRUE(entry.event().repayment_recorded().paid_off());
  EXPECT_EQ(entry.event().repayment_recorded().allocations_size(), 12);
  EXPECT_EQ(Loan(loan_).position().status(), v1::LOAN_STATUS_CLOSED);
  EXPECT_EQ(Loan(loan_).position().closed_date(), "2020-03-01");
  EXPECT_EQ(ReasonOf(Run(kCashier, Repay(loan_, 1)).status), "INVALID_LOAN_STATE");
}

TEST_F(RepaymentTest, EntryDatedBeforeTheLoansLatestEntryIsRefused) {
  SetToday("2020-03-01");
  Ok(kCashier, Repay(loan_, 10'000), "2020-02-20");
  CommandResult earlier = Run(kCashier, Repay(loan_, 10'000), "2020-02-19");
  EXPECT_EQ(earlier.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(earlier.status), "BUSINESS_DATE_BEFORE_LOAN_HISTORY");
  EXPECT_TRUE(Run(kCashier, Repay(loan_, 10'000), "2020-02-20").status.ok());
  EXPECT_EQ(ReasonOf(Run(kCashier, Repay(loan_, 10'000), "2020-03-02").status),
            "BUSINESS_DATE_IN_FUTURE");
}

TEST_F(RepaymentTest, ReversalRestoresTheScheduleState) {
  SetToday("2020-02-20");
  Ok(kCashier, Repay(loan_, 100'000));
  const v1::LoanState before = Loan(loan_);
  v1::Entry repayment = Ok(kCashier, Repay(loan_, 150'000));
  EXPECT_EQ(ReasonOf(Run(kCashier, Reverse(repayment.sequence())).status), "SUPERVISOR_REQUIRED");
  v1::Entry reversal = Ok(kSupervisor, Reverse(repayment.sequence(), "金额录入错误"));
  EXPECT_EQ(reversal.event().entry_reversed().loan_id(), loan_);
  ASSERT_EQ(reversal.postings_size(), repayment.postings_size());
  for (int i = 0; i < reversal.postings_size(); ++i) {
    EXPECT_EQ(reversal.postings(i).account(), repayment.postings(i).account());
    EXPECT_NE(reversal.postings(i).side(), repayment.postings(i).side());
  }
  const v1::LoanState after = Loan(loan_);
  EXPECT_EQ(after.position().SerializeAsString(), before.position().SerializeAsString());
  EXPECT_EQ(Balance("loan:l000001:principal"), 1'100'000);
  CommandResult twice = Run(kSupervisor, Reverse(repayment.sequence()));
  EXPECT_EQ(ReasonOf(twice.status), "ALREADY_REVERSED");
  EXPECT_EQ(ReasonOf(Run(kSupervisor, Reverse(reversal.sequence())).status), "NOT_REVERSIBLE");
  // The first repayment is now the latest, but its earlier state is gone: only the
  // latest financial entry (with its prior state kept) can be undone.
  EXPECT_EQ(ReasonOf(Run(kSupervisor, Reverse(repayment.sequence() - 1)).status),
            "NOT_LATEST_LOAN_ENTRY");
}

TEST_F(RepaymentTest, ARepaymentTheFundHasLentOnCannotBeReversed) {
  // The fixture's fund: 100,000,000 fen in, 1,200,000 lent. A repayment brings 100,000
  // back; lending out everything the fund then holds leaves nothing to give back.
  SetToday("2020-02-20");
  const v1::Entry repayment = Ok(kCashier, Repay(loan_, 100'000));
  const int64_t cash = Balance("union:fund:cash");
  ASSERT_EQ(cash, 100'000'000 - 1'200'000 + 100'000);
  int64_t lent = 0;
  for (int i = 0; lent < cash; ++i) {
    const int64_t amount = std::min<int64_t>(cash - lent, 10'000'000);
    ActiveLoan(Register("借款人" + std::to_string(i)), "fund-2020", amount, 12);
    lent += amount;
  }
  ASSERT_EQ(Balance("union:fund:cash"), 0);
  CommandResult reversal = Run(kSupervisor, Reverse(repayment.sequence()));
  EXPECT_EQ(ReasonOf(reversal.status), "FUND_INSUFFICIENT") << reversal.status;
  EXPECT_EQ(Balance("union:fund:cash"), 0);
  EXPECT_EQ(Loan(loan_).position().principal_repaid_fen(), 100'000);
  // With the cash back in the fund, the same reversal goes through.
  Ok(kCashier, Contribute(100'000));
  Ok(kSupervisor, Reverse(repayment.sequence()));
  EXPECT_EQ(Balance("union:fund:cash"), 0);
  EXPECT_EQ(Loan(loan_).position().principal_repaid_fen(), 0);
}

TEST_F(RepaymentTest, OnlyTheLatestFinancialEntryOfALoanCanBeReversed) {
  SetToday("2020-02-20");
  v1::Entry first = Ok(kCashier, Repay(loan_, 100'000));
  Ok(kCashier, Repay(loan_, 100'000));
  CommandResult refused = Run(kSupervisor, Reverse(first.sequence()));
  EXPECT_EQ(ReasonOf(refused.status), "NOT_LATEST_LOAN_ENTRY");
  EXPECT_EQ(ReasonOf(Run(kSupervisor, Reverse(9999)).status), "ENTRY_NOT_FOUND");
}

TEST_F(RepaymentTest, ReversingADisbursementReturnsTheLoanToApproved) {
  v1::Entry disbursement = ledger_->GetEntry(ledger_->Head().sequence).value();
  ASSERT_TRUE(disbursement.event().has_loan_disbursed());
  Ok(kSupervisor, Reverse(disbursement.sequence()));
  EXPECT_EQ(Loan(loan_).position().status(), v1::LOAN_STATUS_APPROVED);
  EXPECT_EQ(Balance("union:fund:cash"), 100'000'000);
  EXPECT_EQ(Balance("loan:l000001:principal"), 0);
  LoanQuery approved;
  approved.status = v1::LOAN_STATUS_APPROVED;
  ASSERT_EQ(ledger_->ListLoans(approved)->loans.size(), 1u);
  Ok(kCashier, Disburse(loan_));
  EXPECT_EQ(Loan(loan_).position().status(), v1::LOAN_STATUS_ACTIVE);
}

// Jobs are reported on a disbursed loan: with its disbursement reversed they would stay
// in the report, beside no loan disbursed, and could no longer be corrected.
TEST_F(RepaymentTest, ADisbursementWithJobsReportedIsReversedOnlyOnceTheyAreTakenBack) {
  const uint64_t disbursement = ledger_->Head().sequence;
  v1::Event jobs;
  jobs.mutable_jobs_reported()->set_loan_id(loan_);
  jobs.mutable_jobs_reported()->set_jobs_created(6);
  Ok(kOfficer, jobs);
  const uint64_t head = ledger_->Head().sequence;
  CommandResult refused = Run(kSupervisor, Reverse(disbursement));
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kFailedPrecondition) << refused.status;
  EXPECT_EQ(ReasonOf(refused.status), "JOBS_REPORTED") << refused.status;
  EXPECT_NE(refused.status.message().find("has 6 jobs reported"), absl::string_view::npos)
      << refused.status;
  EXPECT_EQ(ledger_->Head().sequence, head);
  jobs.mutable_jobs_reported()->set_jobs_created(0);
  Ok(kOfficer, jobs);
  Ok(kSupervisor, Reverse(disbursement));
  EXPECT_EQ(Loan(loan_).position().status(), v1::LOAN_STATUS_APPROVED);
  absl::StatusOr<ProgrammeReport> report =
      ledger_->GetProgrammeReport(ReportQuery{"2020-01-01", today_.ToString(), {}});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->total.flows.loans_disbursed(), 0);
  EXPECT_EQ(report->total.flows.jobs_reported(), 0);
}

TEST_F(RepaymentTest, WriteOffNeedsASupervisorAndRecoveriesStayWithinIt) {
  SetToday("2020-05-01");
  Ok(kCashier, Repay(loan_, 200'000));
  v1::Event write_off;
  write_off.mutable_loan_written_off()->set_loan_id(loan_);
  write_off.mutable_loan_written_off()->set_reason("借款人失联, 担保追偿无果");
  EXPECT_EQ(ReasonOf(Run(kApprover, write_off).status), "SUPERVISOR_REQUIRED");
  v1::Entry entry = Ok(kSupervisor, write_off);
  EXPECT_EQ(entry.event().loan_written_off().amount_fen(), 1'000'000);
  EXPECT_EQ(Loan(loan_).position().status(), v1::LOAN_STATUS_WRITTEN_OFF);
  EXPECT_EQ(Balance("loan:l000001:principal"), 0);
  EXPECT_EQ(Balance("union:fund:writeoffs"), 1'000'000);
  v1::Event recovery;
  recovery.mutable_recovery_recorded()->set_loan_id(loan_);
  recovery.mutable_recovery_recorded()->set_amount_fen(600'000);
  recovery.mutable_recovery_recorded()->set_channel(v1::PAYMENT_CHANNEL_CASH);
  Ok(kCashier, recovery);
  EXPECT_EQ(ReasonOf(Run(kCashier, recovery).status), "EXCEEDS_WRITTEN_OFF");
  recovery.mutable_recovery_recorded()->set_amount_fen(400'000);
  Ok(kCashier, recovery);
  EXPECT_EQ(Loan(loan_).position().recovered_fen(), 1'000'000);
  EXPECT_EQ(Balance("union:fund:recoveries"), -1'000'000);
}

// A written-off loan owes nothing more: its later installments do not fall due in the
// report's collection rate, and its statement shows what it left unpaid as written off.
// Reversing the write-off brings both back.
TEST_F(RepaymentTest, AWrittenOffLoansLaterInstallmentsNoLongerFallDue) {
  SetToday("2020-05-01");
  // February to April's installments, late, and 50,000 of May's ahead of its date.
  Ok(kCashier, Repay(loan_, 200'000));
  Ok(kCashier, Repay(loan_, 150'000));
  v1::Event write_off;
  write_off.mutable_loan_written_off()->set_loan_id(loan_);
  write_off.mutable_loan_written_off()->set_reason("借款人失联, 担保追偿无果");
  const v1::Entry entry = Ok(kSupervisor, write_off);
  EXPECT_EQ(entry.event().loan_written_off().amount_fen(), 850'000);
  SetToday("2020-12-31");
  auto due_in_2020 = [&] {
    absl::StatusOr<ProgrammeReport> report =
        ledger_->GetProgrammeReport(ReportQuery{"2020-01-01", "2020-12-31", {}});
    EXPECT_TRUE(report.ok()) << report.status();
    return std::make_pair(report->total.flows.principal_due_fen(),
                          report->total.flows.principal_repaid_on_time_fen());
  };
  // Due: February to April's, and the 50,000 of May's paid before the write-off, on time.
  EXPECT_EQ(due_in_2020(), std::make_pair(int64_t{350'000}, int64_t{50'000}));
  LoanStatement statement = *ledger_->GetLoanStatement(loan_, "2020-12-31");
  ASSERT_EQ(statement.installments.size(), 12u);
  EXPECT_EQ(statement.installments[2].state, "paid");
  EXPECT_EQ(statement.installments[3].state, "written off");  // May's, partly paid
  EXPECT_EQ(statement.installments[3].paid_fen, 50'000);
  EXPECT_EQ(statement.installments[11].state, "written off");  // January 2021's
  // As of a day before the write-off, the statement is as it was then.
  EXPECT_EQ(ledger_->GetLoanStatement(loan_, "2020-04-30")->installments[2].state, "overdue");
  Ok(kSupervisor, Reverse(entry.sequence()), "2020-12-31");
  EXPECT_EQ(due_in_2020(), std::make_pair(int64_t{1'100'000}, int64_t{50'000}));
  EXPECT_EQ(ledger_->GetLoanStatement(loan_, "2020-12-31")->installments[3].state, "overdue");
}

TEST_F(RepaymentTest, JobsAreReportedBesideTheExpectedCount) {
  v1::Event jobs;
  jobs.mutable_jobs_reported()->set_loan_id(loan_);
  jobs.mutable_jobs_reported()->set_jobs_created(6);
  jobs.mutable_jobs_reported()->set_note("回访: 新增6名员工");
  Ok(kOfficer, jobs);
  EXPECT_EQ(Loan(loan_).jobs_reported(), 6);
  EXPECT_EQ(Loan(loan_).jobs_expected(), 4);
  const std::string pending = Submit(Register("未放款"), "fund-2020", 100'000, 6);
  jobs.mutable_jobs_reported()->set_loan_id(pending);
  EXPECT_EQ(ReasonOf(Run(kOfficer, jobs).status), "INVALID_LOAN_STATE");
}

// ---- Delinquency -----------------------------------------------------------------------

// The follow-up list pages like every other list, in its own order: most days past due
// first, then by loan id. Nothing is left out however long it is, and a token the ledger
// did not give is refused.
TEST_F(ProgrammeTest, OverdueLoansComeAPageAtATimeMostDaysPastDueFirst) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  Ok(kCashier, Contribute(100'000'000));
  const std::string borrower = Register("王建国");
  std::vector<std::string> loans;
  for (const char* day : {"2020-03-01", "2020-01-15", "2020-03-01", "2020-02-10"}) {
    SetToday(day);
    loans.push_back(ActiveLoan(borrower, "fund-2020", 600'000, 6));  // first due a month on
  }
  SetToday("2020-06-30");
  OverdueQuery query{"2020-06-30", 3, ""};
  std::vector<std::string> listed;
  std::vector<int> days;
  std::vector<std::string> tokens;
  for (int page_count = 0; page_count < 10; ++page_count) {
    absl::StatusOr<OverduePage> page = ledger_->ListOverdueLoans(query);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const OverdueLoan& loan : page->loans) {
      listed.push_back(loan.loan_id);
      days.push_back(loan.days_past_due);
    }
    tokens.push_back(page->next_page_token);
    if (page->next_page_token.empty()) break;
    query.page_token = page->next_page_token;
  }
  EXPECT_EQ(listed, (std::vector<std::string>{loans[1], loans[3], loans[0], loans[2]}));
  EXPECT_EQ(days, (std::vector<int>{136, 112, 90, 90}));
  // The first page ends between the two loans 90 days past due: the token's loan id
  // decides where the next begins.
  EXPECT_EQ(tokens, (std::vector<std::string>{"90/" + loans[0], ""}));
  for (const char* bad : {"L000001", "91/B000001", "x/L000001", "/L000001", "91/"}) {
    query.page_token = bad;
    absl::StatusOr<OverduePage> refused = ledger_->ListOverdueLoans(query);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(Fields(refused.status()), std::vector<std::string>{"page_token"}) << bad;
  }
}

TEST_F(RepaymentTest, OverdueAfterGraceAndDaysPastDueFromTheDueDate) {
  // Installment 1 is due 2020-02-15; grace is 5 days.
  auto statement = [&](const char* date) { return *ledger_->GetLoanStatement(loan_, date); };
  EXPECT_EQ(statement("2020-02-15").installments[0].state, "due");
  EXPECT_EQ(statement("2020-02-20").delinquency.days_past_due, 0);  // within grace
  EXPECT_EQ(statement("2020-02-20").installments[0].state, "due");
  LoanStatement late = statement("2020-02-21");
  EXPECT_EQ(late.installments[0].state, "overdue");
  EXPECT_EQ(late.delinquency.days_past_due, 6);  // counted from the due date
  EXPECT_EQ(late.delinquency.bucket, "1-30");
  EXPECT_EQ(late.delinquency.overdue_principal_fen, 100'000);
  EXPECT_EQ(statement("2020-04-20").delinquency.bucket, "61-90");
  EXPECT_EQ(statement("2020-04-20").delinquency.overdue_installments, 2);
  EXPECT_EQ(statement("2020-09-01").delinquency.bucket, "180+");
  SetToday("2020-03-01");
  Ok(kCashier, Repay(loan_, 100'000));
  EXPECT_EQ(statement("2020-03-01").delinquency.days_past_due, 0);
  // As of a date before that repayment, the loan was still late.
  EXPECT_EQ(statement("2020-02-29").delinquency.days_past_due, 14);
  // Submitted, approved, disbursed, repaid.
  EXPECT_EQ(statement("2020-03-01").entries.size(), 4u);
  // Before the disbursement (2020-01-15) there is no statement to give.
  absl::StatusOr<LoanStatement> early = ledger_->GetLoanStatement(loan_, "2020-01-14");
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(early.status()), "BEFORE_DISBURSEMENT");
  EXPECT_NE(early.status().message().find("disbursed on 2020-01-15"), absl::string_view::npos)
      << early.status();
  EXPECT_EQ(statement("2020-01-15").delinquency.outstanding_fen, 1'200'000);
}

// Each statement lists exactly its loan's entries, once each, in journal order, also when
// the loans' entries interleave in the journal and statements are read from many threads
// at once.
TEST_F(RepaymentTest, StatementEntriesAreTheLoansInJournalOrder) {
  SetToday("2020-03-01");
  const std::string other = ActiveLoan(Register("另一位"), "fund-2020", 600'000, 6);
  for (int i = 0; i < 12; ++i) {
    Ok(kCashier, Repay(loan_, 10'000));
    Ok(kCashier, Repay(other, 5'000));
  }
  auto sequences = [&](const std::string& id) {
    std::vector<uint64_t> out;
    absl::StatusOr<LoanStatement> statement = ledger_->GetLoanStatement(id, "2020-03-01");
    EXPECT_TRUE(statement.ok()) << statement.status();
    if (!statement.ok()) return out;
    for (const v1::Entry& entry : statement->entries) out.push_back(entry.sequence());
    return out;
  };
  Reopen();  // the entries' copies now come from the files the close flushed
  const std::vector<uint64_t> mine = sequences(loan_);
  const std::vector<uint64_t> others = sequences(other);
  // Submitted, approved, disbursed and 12 repayments; interleaved with the other loan's.
  ASSERT_EQ(mine.size(), 15u);
  EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
  ASSERT_EQ(others.size(), 15u);
  for (uint64_t sequence : others) {
    EXPECT_EQ(std::count(mine.begin(), mine.end(), sequence), 0) << sequence;
  }
  std::vector<std::thread> readers;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const bool first = (t + i) % 2 == 0;
        if (sequences(first ? loan_ : other) != (first ? mine : others)) ++wrong;
      }
    });
  }
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(wrong.load(), 0);
}

// A statement read while its loan is being repaid tells one story: the loan it shows is the
// loan after exactly the entries it lists. Its repaid principal is the sum of the listed
// repayments, and its last financial entry is the last one listed. The loan and its entries
// are stored apart (projections and indexes) and each repayment rewrites both. Nor does it
// list an entry past the durable head.
TEST_F(RepaymentTest, AStatementReadWhileItsLoanIsRepaidAgreesWithItself) {
  SetToday("2020-03-01");
  constexpr int kRepayments = 3000;
  testing::SteadyWriter cashier(*ledger_, kRepayments, 16,
                                [&](int i) { return Repayment(Cat("bank-ref-", i), 1); });
  int statements = 0;
  int retried = 0;  // ABORTED, reason LOAN_CHANGING: the loan kept changing; retry
  int wrong = 0;
  std::set<int64_t> repaid_seen;
  std::string first_wrong;
  absl::Status failed;
  while (!cashier.done()) {
    absl::StatusOr<LoanStatement> statement = ledger_->GetLoanStatement(loan_, "2020-03-01");
    if (ReasonOf(statement.status()) == "LOAN_CHANGING") {
      ++retried;
      continue;
    }
    if (!statement.ok()) {
      failed = statement.status();
      break;
    }
    ++statements;
    int64_t listed_repaid = 0;
    uint64_t last_financial = 0;
    for (const v1::Entry& entry : statement->entries) {
      if (entry.event().has_repayment_recorded()) {
        for (const auto& allocation : entry.event().repayment_recorded().allocations())
          listed_repaid += allocation.principal_fen();
      }
      if (entry.event().has_repayment_recorded() || entry.event().has_loan_disbursed())
        last_financial = entry.sequence();
    }
    const v1::LoanPosition& position = statement->loan.position();
    repaid_seen.insert(position.principal_repaid_fen());
    const uint64_t last_listed = statement->entries.back().sequence();
    const uint64_t head = ledger_->Head().sequence;  // read after the statement
    if (listed_repaid != position.principal_repaid_fen() ||
        last_financial != position.last_financial_sequence() || last_listed > head) {
      if (wrong++ == 0) {
        first_wrong = Cat("the loan shows ", position.principal_repaid_fen(),
                          " fen repaid, last financial entry ", position.last_financial_sequence(),
                          "; its entries ", listed_repaid, " fen, last financial ", last_financial,
                          ", last ", last_listed, "; the durable head ", head);
      }
    }
  }
  EXPECT_EQ(cashier.Finish(), 0);
  EXPECT_TRUE(failed.ok()) << failed;
  EXPECT_EQ(wrong, 0) << "of " << statements << " statements; the first: " << first_wrong;
  // The reads overlapped the writes: the statements saw the loan at many points.
  EXPECT_GT(repaid_seen.size(), 20u) << statements << " statements, " << retried << " retried";
  EXPECT_EQ(Loan(loan_).position().principal_repaid_fen(), kRepayments);
}

// Reads that name entries by sequence wait until those entries are durable. A batch is in
// storage once its synced write returns, a moment before the ledger publishes it as the
// durable head (Head, GetEntry): here that moment is held open. The tree head, the loan
// read alone or listed, and its statement wait for the publishing, then name the new
// entry, which GetEntry returns.
TEST_F(RepaymentTest, ReadsThatNameAnEntryWaitUntilItIsDurable) {
  SetToday("2020-03-01");
  std::shared_ptr<PublishGate> gate = GatePublishing();
  const uint64_t before = ledger_->Head().sequence;
  const uint64_t held = before + 1;
  gate->Hold(held);
  std::future<CommandResult> repaid;
  std::future<absl::StatusOr<TreeHead>> tree;
  std::future<absl::StatusOr<v1::LoanState>> loan;
  std::future<absl::StatusOr<LoanPage>> listed;
  std::future<absl::StatusOr<LoanStatement>> statement;
  PublishGate::OpenOnExit opener{*gate};
  repaid = std::async(std::launch::async,
                      [&] { return ledger_->SubmitAndWait(Repayment("bank-ref-held", 50'000)); });
  ASSERT_TRUE(gate->WaitUntilHeld());
  // The repayment is in storage, not yet published.
  EXPECT_EQ(ledger_->Head().sequence, before);
  EXPECT_EQ(ledger_->GetEntry(held).status().code(), absl::StatusCode::kNotFound);
  tree = std::async(std::launch::async, [&] { return ledger_->GetTreeHead(); });
  loan = std::async(std::launch::async, [&] { return ledger_->GetLoan(loan_); });
  listed = std::async(std::launch::async, [&] { return ledger_->ListLoans(LoanQuery{}); });
  statement = std::async(std::launch::async,
                         [&] { return ledger_->GetLoanStatement(loan_, "2020-03-01"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto waiting = [](const auto& future) {
    return future.wait_for(std::chrono::seconds(0)) == std::future_status::timeout;
  };
  EXPECT_TRUE(waiting(tree));
  EXPECT_TRUE(waiting(loan));
  EXPECT_TRUE(waiting(listed));
  EXPECT_TRUE(waiting(statement));
  gate->Open();
  ASSERT_TRUE(repaid.get().status.ok());
  absl::StatusOr<TreeHead> tree_head = tree.get();
  ASSERT_TRUE(tree_head.ok()) << tree_head.status();
  EXPECT_EQ(tree_head->size, held);
  EXPECT_TRUE(ledger_->GetInclusionProof(held - 1, tree_head->size).ok());
  absl::StatusOr<v1::LoanState> alone = loan.get();
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(alone->position().last_financial_sequence(), held);
  absl::StatusOr<LoanPage> page = listed.get();
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->loans.size(), 1u);
  EXPECT_EQ(page->loans[0].position().last_financial_sequence(), held);
  absl::StatusOr<LoanStatement> read = statement.get();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->entries.back().sequence(), held);
  EXPECT_EQ(read->loan.position().last_financial_sequence(), held);
  EXPECT_TRUE(ledger_->GetEntry(held).ok());
}

// A read that finds in storage an entry the committer has not yet published waits for it
// (above), but not for ever: after kHeadPublishedWait (5 s) it answers UNAVAILABLE, saying
// how far the durable head got, and nothing is lost once the committer goes on.
TEST_F(RepaymentTest, AReadKeptWaitingTooLongForTheDurableHeadIsUnavailable) {
  SetToday("2020-03-01");
  std::shared_ptr<PublishGate> gate = GatePublishing();
  const uint64_t before = ledger_->Head().sequence;
  const uint64_t held = before + 1;
  gate->Hold(held);
  std::future<CommandResult> repaid;
  PublishGate::OpenOnExit opener{*gate};
  repaid = std::async(std::launch::async,
                      [&] { return ledger_->SubmitAndWait(Repayment("bank-ref-stuck", 50'000)); });
  ASSERT_TRUE(gate->WaitUntilHeld());
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<v1::LoanState> stuck = ledger_->GetLoan(loan_);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_FALSE(stuck.ok());
  EXPECT_EQ(stuck.status().code(), absl::StatusCode::kUnavailable) << stuck.status();
  EXPECT_NE(stuck.status().message().find(
                Cat("storage shows entry ", held, " but the durable head has stayed at ", before)),
            std::string_view::npos)
      << stuck.status();
  gate->Open();
  ASSERT_TRUE(repaid.get().status.ok());
  absl::StatusOr<v1::LoanState> loan = ledger_->GetLoan(loan_);
  ASSERT_TRUE(loan.ok()) << loan.status();
  EXPECT_EQ(loan->position().last_financial_sequence(), held);
}

// A statement reads the copies of the loan's entries that the loan-entries index keeps:
// byte for byte the journal's, rebuilt from the journal for a database of an engine that
// kept none, and refused (DATA_LOSS naming the entry) when one is damaged.
TEST_F(RepaymentTest, StatementReadsTheCopiesOfTheLoansEntriesKeptTogether) {
  SetToday("2020-03-01");
  for (int i = 0; i < 3; ++i) Ok(kCashier, Repay(loan_, 10'000));
  absl::StatusOr<LoanStatement> statement = ledger_->GetLoanStatement(loan_, "2020-03-01");
  ASSERT_TRUE(statement.ok()) << statement.status();
  ASSERT_EQ(statement->entries.size(), 6u);  // submitted, approved, disbursed, 3 repayments
  const std::string prefix = LoanEntriesPrefix(loan_);
  ledger_.reset();
  {
    testing::RawDb raw(dir_.path());
    for (const v1::Entry& entry : statement->entries) {
      const std::string key = Cat(prefix, SequenceKey(entry.sequence()));
      std::optional<std::string> copy = raw.Get("indexes", key);
      ASSERT_TRUE(copy.has_value()) << entry.sequence();
      EXPECT_EQ(copy, raw.Get("journal", SequenceKey(entry.sequence()))) << entry.sequence();
    }
    // As an engine before the copies left the index: empty values, an older version.
    for (const auto& [key, value] : raw.All("indexes")) {
      if (key.starts_with(kLoanEntriesPrefix)) raw.Put("indexes", key, "");
    }
    raw.Put("meta", "projections", "gongdai-projections-4");
  }
  Reopen();
  EXPECT_TRUE(ledger_->ProjectionsRebuiltOnOpen());
  absl::StatusOr<LoanStatement> rebuilt = ledger_->GetLoanStatement(loan_, "2020-03-01");
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  ASSERT_EQ(rebuilt->entries.size(), statement->entries.size());
  for (size_t i = 0; i < rebuilt->entries.size(); ++i) {
    EXPECT_EQ(rebuilt->entries[i].SerializeAsString(), statement->entries[i].SerializeAsString())
        << i;
  }

  // One byte of the second repayment's copy changed: its hash no longer matches.
  const uint64_t damaged = statement->entries[4].sequence();
  ledger_.reset();
  {
    testing::RawDb raw(dir_.path());
    const std::string key = Cat(prefix, SequenceKey(damaged));
    std::string copy = *raw.Get("indexes", key);
    copy[copy.size() / 2] ^= 0x01;
    raw.Put("indexes", key, copy);
  }
  Reopen();
  absl::StatusOr<LoanStatement> refused = ledger_->GetLoanStatement(loan_, "2020-03-01");
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kDataLoss) << refused.status();
  EXPECT_TRUE(std::string(refused.status().message())
                  .starts_with(Cat("the loan-entries index's copy of entry ", damaged, ":")))
      << refused.status();
  auto mismatch = ledger_->CompareProjectionsWithRebuild();
  ASSERT_TRUE(mismatch.ok()) << mismatch.status();
  ASSERT_TRUE(mismatch->has_value());
  EXPECT_EQ((*mismatch)->space, "indexes");
  EXPECT_TRUE((*mismatch)->key.starts_with(prefix)) << (*mismatch)->key;
  ASSERT_TRUE((*mismatch)->stored.has_value() && (*mismatch)->rebuilt.has_value());
  EXPECT_EQ((*mismatch)->stored->size(), (*mismatch)->rebuilt->size());
  EXPECT_NE((*mismatch)->stored, (*mismatch)->rebuilt);
}

// Before it executes a batch, the writer reads the state its commands name (the loans, their
// summaries and principal accounts) several reads at once, across commands. On a book whose loans
// are on disk, not in memory, a batch of repayments on different loans then waits for its disk
// reads together rather than for each in turn. With batch_read_threads 0 the same batch
// reads one at a time. Both record the same entries and leave the same loans.
TEST_F(RepaymentTest, ABatchsLoansAreReadFromDiskTogether) {
  std::vector<std::string> loans;
  for (int i = 0; i < 8; ++i) {
    loans.push_back(ActiveLoan(Register(Cat("借款人", i)), "fund-2020", 600'000, 6));
  }
  SetToday("2020-02-20");
  ledger_.reset();
  {
    // Every write into the table files, so that the reads below go to the disk.
    absl::StatusOr<std::unique_ptr<Storage>> storage =
        Storage::Open(dir_.path(), testing::FixedDayOptions(), OpenMode::kReadWrite);
    ASSERT_TRUE(storage.ok()) << storage.status();
    ASSERT_TRUE((*storage)->Settle(std::chrono::seconds(60)).ok());
  }
  testing::TempDir copy;
  std::filesystem::copy(dir_.path(), copy.path(), std::filesystem::copy_options::recursive);

  struct Run {
    int most_reads_at_once = 0;
    std::vector<std::string> entries;  // the repayments', serialized
    std::vector<std::string> loans;    // the loans' states after them, serialized
  };
  auto run = [&](const std::string& path, size_t helpers) {
    Run out;
    testing::FaultEnv fault;
    path_ = path;
    env_ = fault.env.get();
    batch_read_threads_ = helpers;
    recent_projection_bytes_ = 0;  // every loan read from storage, by each batch
    block_cache_bytes_ = 1;        // and from the table files, not RocksDB's block cache
    Reopen();
    // The first repayment's batch is held in its sync. Meanwhile the writer executes at
    // most one more batch (the next one waits for the commit slot), so at least six of
    // the other seven repayments queue up and are executed as one batch once it is let go.
    std::promise<void> syncing, release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<int> syncs{0};
    fault.fs->SetBeforeSync([&] {
      if (syncs++ > 0) return;
      syncing.set_value();
      released.wait();
    });
    fault.fs->read_delay_ms = 20;
    std::vector<std::promise<CommandResult>> done(loans.size());
    for (size_t i = 0; i < loans.size(); ++i) {
      Command command = Repayment(Cat("together-", i), 50'000);
      command.event = Repay(loans[i], 50'000);
      ledger_->Submit(std::move(command),
                      [&done, i](CommandResult result) { done[i].set_value(std::move(result)); });
      if (i == 0) syncing.get_future().wait();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    release.set_value();
    for (auto& promise : done) {
      CommandResult result = promise.get_future().get();
      EXPECT_TRUE(result.status.ok()) << result.status;
      out.entries.push_back(result.entry.SerializeAsString());
    }
    fault.fs->read_delay_ms = 0;
    out.most_reads_at_once = fault.fs->most_reads_in_flight.load();
    for (const std::string& loan : loans) out.loans.push_back(Loan(loan).SerializeAsString());
    ledger_.reset();
    fault.fs->SetBeforeSync(nullptr);
    env_ = nullptr;
    return out;
  };
  const Run together = run(dir_.path(), 4);
  const Run alone = run(copy.path(), 0);
  // One repayment reads 2 keys (its loan and its principal account): 4 at once means at
  // least two repayments' reads together.
  EXPECT_GE(together.most_reads_at_once, 4);
  EXPECT_EQ(alone.most_reads_at_once, 1);
  EXPECT_EQ(together.entries, alone.entries);
  EXPECT_EQ(together.loans, alone.loans);
  for (size_t i = 0; i < loans.size(); ++i) {
    v1::LoanState loan;
    ASSERT_TRUE(loan.ParseFromString(together.loans[i]));
    EXPECT_EQ(loan.position().principal_repaid_fen(), 50'000) << loans[i];
  }
}

// Apply's state for the test below: a replay's, refusing every read of a loan's summary.
class SummariesUnread final : public StateWriter {
 public:
  absl::StatusOr<std::optional<std::string>> Get(Space space, std::string_view key) override {
    if (absl::Status refused = Refuse(space, key); !refused.ok()) return refused;
    return state.Get(space, key);
  }
  absl::Status Read(Space space, std::string_view key, ReadFn read) override {
    if (absl::Status refused = Refuse(space, key); !refused.ok()) return refused;
    return state.Read(space, key, read);
  }
  void Put(Space space, std::string_view key, std::string_view value) override {
    state.Put(space, key, value);
  }
  void PutOwned(Space space, std::string_view key, std::string value) override {
    state.PutOwned(space, key, std::move(value));
  }
  void Delete(Space space, std::string_view key) override { state.Delete(space, key); }
  absl::Status Post(const v1::Posting& posting, uint64_t sequence) override {
    return state.Post(posting, sequence);
  }

  MemoryState state;

 private:
  static absl::Status Refuse(Space space, std::string_view key) {
    if (space == Space::kProjections && key.starts_with(kLoanSummaryPrefix))
      return absl::InternalError(Cat("apply read the summary ", key));
    return absl::OkStatus();
  }
};

// A loan's summary before an entry is derived from the loan as stored, not read: a loan
// the writer does not hold costs one read fewer (on a large book, a disk read). Every
// entry of a book that goes through each way a summary changes (a disbursement,
// repayments, a repayment reversed, a disbursement reversed, a loan repaid in full, a
// write-off) applies to a state that refuses to read a summary, and leaves the summaries
// and the report's stocks the ledger stored.
TEST_F(RepaymentTest, ApplyDerivesTheSummaryBeforeAnEntryInsteadOfReadingIt) {
  const std::string reversed = ActiveLoan(Register("李秀英"), "fund-2020", 600'000, 6);
  const uint64_t disbursement = Loan(reversed).position().last_financial_sequence();
  const std::string repaid = ActiveLoan(Register("张伟"), "fund-2020", 300'000, 3);
  const std::string written_off = ActiveLoan(Register("刘洋"), "fund-2020", 600'000, 6);
  SetToday("2020-02-20");
  const v1::Entry repayment = Ok(kCashier, Repay(loan_, 150'000));
  Ok(kSupervisor, Reverse(repayment.sequence()));
  Ok(kCashier, Repay(loan_, 100'000));
  Ok(kSupervisor, Reverse(disbursement));
  Ok(kCashier, Repay(repaid, 300'000));
  v1::Event write_off;
  write_off.mutable_loan_written_off()->set_loan_id(written_off);
  write_off.mutable_loan_written_off()->set_reason("借款人失联, 担保追偿无果");
  Ok(kSupervisor, write_off);
  EXPECT_EQ(Loan(reversed).position().status(), v1::LOAN_STATUS_APPROVED);
  EXPECT_EQ(Loan(repaid).position().status(), v1::LOAN_STATUS_CLOSED);
  EXPECT_EQ(Loan(written_off).position().status(), v1::LOAN_STATUS_WRITTEN_OFF);
  ledger_.reset();

  absl::StatusOr<std::unique_ptr<Storage>> storage =
      Storage::Open(dir_.path(), testing::FixedDayOptions(), OpenMode::kReadOnly);
  ASSERT_TRUE(storage.ok()) << storage.status();
  SummariesUnread state;
  CompactRange edge;
  uint64_t applied = 0;
  absl::Status replayed =
      ForEachOpenedEntry(**storage, nullptr, [&](const OpenedEntry& opened) -> absl::Status {
        if (!opened.status.ok()) return opened.status;
        ++applied;
        return Apply(opened.entry, opened.stored, state, edge);
      });
  ASSERT_TRUE(replayed.ok()) << replayed;
  EXPECT_GT(applied, 20u);

  // What the ledger stored under a prefix of the projections, and what the replay left.
  auto stored = [&](std::string_view prefix) {
    std::vector<std::pair<std::string, std::string>> out;
    EXPECT_TRUE((*storage)
                    ->Scan(Space::kProjections, prefix,
                           [&](std::string_view key, std::string_view value) {
                             if (!key.starts_with(prefix)) return false;
                             out.emplace_back(key, value);
                             return true;
                           })
                    .ok());
    return out;
  };
  auto replay = [&](std::string_view prefix) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [key, value] : state.state.Sorted(Space::kProjections, prefix))
      out.emplace_back(key, value);
    return out;
  };
  const std::vector<std::pair<std::string, std::string>> summaries = stored(kLoanSummaryPrefix);
  // The reversed disbursement took its loan's summary away; the other three loans keep one.
  ASSERT_EQ(summaries.size(), 3u);
  EXPECT_FALSE(std::any_of(summaries.begin(), summaries.end(),
                           [&](const auto& s) { return s.first == LoanSummaryKey(reversed); }));
  EXPECT_EQ(replay(kLoanSummaryPrefix), summaries);
  // What makes deriving it sound: each stored summary is that of the stored loan.
  for (const auto& [key, bytes] : summaries) {
    const std::string loan_id = key.substr(kLoanSummaryPrefix.size());
    absl::StatusOr<std::optional<std::string>> stored_loan =
        (*storage)->Get(Space::kProjections, LoanKey(loan_id));
    ASSERT_TRUE(stored_loan.ok() && stored_loan->has_value()) << loan_id;
    v1::LoanState loan;
    ASSERT_TRUE(loan.ParseFromString(**stored_loan));
    const std::optional<v1::LoanSummary> derived = SummaryOf(loan);
    ASSERT_TRUE(derived.has_value()) << loan_id;
    EXPECT_EQ(derived->SerializeAsString(), bytes) << loan_id;
  }
  EXPECT_FALSE(stored(kStockPrefix).empty());
  EXPECT_EQ(replay(kStockPrefix), stored(kStockPrefix));
}

TEST(Aging, BucketsAtTheirEdges) {
  EXPECT_EQ(AgingBucket(0), "current");
  EXPECT_EQ(AgingBucket(1), "1-30");
  EXPECT_EQ(AgingBucket(30), "1-30");
  EXPECT_EQ(AgingBucket(31), "31-60");
  EXPECT_EQ(AgingBucket(60), "31-60");
  EXPECT_EQ(AgingBucket(61), "61-90");
  EXPECT_EQ(AgingBucket(90), "61-90");
  EXPECT_EQ(AgingBucket(91), "91-180");
  EXPECT_EQ(AgingBucket(180), "91-180");
  EXPECT_EQ(AgingBucket(181), "180+");
}

TEST_F(ProgrammeTest, PortfolioAtRiskCountsOutstandingPrincipalOfLateLoans) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  Ok(kCashier, Contribute(100'000'000));
  SetToday("2020-01-10");
  const std::string punctual = ActiveLoan(Register("甲"), "fund-2020", 1'200'000, 12);
  const std::string late = ActiveLoan(Register("乙"), "fund-2020", 600'000, 6);
  const std::string very_late =
      ActiveLoan(Register("丙"), "fund-2020", 3'000'000, 3, v1::REPAYMENT_METHOD_BULLET);
  SetToday("2020-05-20");
  for (int month = 0; month < 4; ++month) Ok(kCashier, Repay(punctual, 100'000));
  Ok(kCashier, Repay(late, 200'000));
  // As of 2020-05-20: punctual is current; late has paid 2 of 6 (installment 3 due
  // 2020-04-10: 40 days past due); very_late's only installment was due 2020-04-10.
  PortfolioFigures figures = *ledger_->GetPortfolio("2020-07-20");
  EXPECT_EQ(figures.loans_outstanding, 3);
  EXPECT_EQ(figures.outstanding_fen, 800'000 + 400'000 + 3'000'000);
  // As of 2020-07-20 (101 days after 2020-04-10) late and very_late are both past 90;
  // punctual (paid through installment 4, due 2020-05-10) is 71 days late.
  EXPECT_EQ(figures.par30_fen, 800'000 + 400'000 + 3'000'000);
  EXPECT_EQ(figures.par90_fen, 400'000 + 3'000'000);
  PortfolioFigures earlier = *ledger_->GetPortfolio("2020-05-20");
  EXPECT_EQ(earlier.par30_fen, 400'000 + 3'000'000);
  EXPECT_EQ(earlier.par90_fen, 0);
  EXPECT_EQ(earlier.aging[0].name, "current");
  EXPECT_EQ(earlier.aging[0].loans, 1);
  EXPECT_EQ(earlier.aging[2].loans, 2);  // 31-60
}

// ---- Subsidy ---------------------------------------------------------------------------

class SubsidyTest : public ProgrammeTest {
 protected:
  std::string BankLoan(const char* rate, v1::DayCountConvention day_count, int64_t amount_fen,
                       const char* date) {
    DefineProduct("bank-" + std::to_string(++products_), testing::BankTerms(rate, day_count));
    SetToday(date);
    return ActiveLoan(Register("借款人" + std::to_string(products_)),
                      "bank-" + std::to_string(products_), amount_fen, 12,
                      v1::REPAYMENT_METHOD_BULLET);
  }
  std::vector<int64_t> AccrualAmounts(const v1::Entry& entry) {
    std::vector<int64_t> out;
    for (const v1::AccrualPeriod& p : entry.event().subsidy_accrued().accruals())
      out.push_back(p.amount_fen());
    return out;
  }
  int products_ = 0;
};

// Worked by hand: 100,000.00 yuan at 4.35% from 2020-01-15.
// January: 17 days x 10,000,000 fen = 170,000,000 fen-days.
//   ACT/360: 170,000,000 x 0.0435 / 360 = 20,541.67 -> 20,542 fen
//   ACT/365: 170,000,000 x 0.0435 / 365 = 20,260.27 -> 20,260 fen
// February 2020 (29 days, a leap year): 290,000,000 fen-days.
//   ACT/360: 35,041.67 -> 35,042;  ACT/365: 34,561.64 -> 34,562
TEST_F(SubsidyTest, AccruesDailyAndPostsPerCalendarMonthAct360AcrossALeapFebruary) {
  const std::string loan =
      BankLoan("0.0435", v1::DAY_COUNT_CONVENTION_ACT_360, 10'000'000, "2020-01-15");
  SetToday("2020-01-31");
  EXPECT_EQ(ReasonOf(Run(kCashier, Accrue(loan)).status), "NOTHING_TO_ACCRUE");
  SetToday("2020-03-01");
  v1::Entry entry = Ok(kCashier, Accrue(loan));
  ASSERT_EQ(entry.event().subsidy_accrued().accruals_size(), 2);
  EXPECT_EQ(entry.event().subsidy_accrued().accruals(0).start_date(), "2020-01-15");
  EXPECT_EQ(entry.event().subsidy_accrued().accruals(0).end_date(), "2020-02-01");
  EXPECT_EQ(entry.event().subsidy_accrued().accruals(0).principal_fen_days(), 170'000'000);
  EXPECT_EQ(AccrualAmounts(entry), (std::vector<int64_t>{20'542, 35'042}));
  EXPECT_EQ(Balance("bank:psbc:subsidy_payable"), -(20'542 + 35'042));
  EXPECT_EQ(Balance("union:subsidy:expense"), 20'542 + 35'042);
}

TEST_F(SubsidyTest, Act365GivesTheSameDaysOverThreeHundredSixtyFive) {
  const std::string loan =
      BankLoan("0.0435", v1::DAY_COUNT_CONVENTION_ACT_365, 10'000'000, "2020-01-15");
  SetToday("2020-03-01");
  EXPECT_EQ(AccrualAmounts(Ok(kCashier, Accrue(loan))), (std::vector<int64_t>{20'260, 34'562}));
}

// A partial repayment of 40,000.00 on 2020-03-10: March has 9 days at 10,000,000 and 22
// days at 6,000,000 = 222,000,000 fen-days; x 0.0435 / 360 = 26,825 exactly, / 365 =
// 26,457.53 -> 26,458.
TEST_F(SubsidyTest, PartialRepaymentMidPeriodChangesThePrincipalFromThatDay) {
  const std::string loan =
      BankLoan("0.0435", v1::DAY_COUNT_CONVENTION_ACT_360, 10'000'000, "2020-01-15");
  const std::string loan365 =
      BankLoan("0.0435", v1::DAY_COUNT_CONVENTION_ACT_365, 10'000'000, "2020-01-15");
  SetToday("2020-03-01");
  Ok(kCashier, Accrue(loan));
  Ok(kCashier, Accrue(loan365));
  SetToday("2020-03-10");
  Ok(kCashier, Repay(loan, 4'000'000));
  Ok(kCashier, Repay(loan365, 4'000'000));
  SetToday("2020-04-01");
  v1::Entry march = Ok(kCashier, Accrue(loan));
  ASSERT_EQ(march.event().subsidy_accrued().accruals_size(), 1);
  EXPECT_EQ(march.event().subsidy_accrued().accruals(0).principal_fen_days(), 222'000'000);
  EXPECT_EQ(AccrualAmounts(march), (std::vector<int64_t>{26'825}));
  EXPECT_EQ(AccrualAmounts(Ok(kCashier, Accrue(loan365))), (std::vector<int64_t>{26'458}));
}

// 0.0365 a year on ACT/365 is exactly 0.0001 a day. One day on 1,005,000 fen is 100.5
// fen: a tie, rounded to the even 100. On 1,015,000 fen it is 101.5: rounded to 102.
TEST_F(SubsidyTest, HalfFenTiesRoundToEvenOnlyOncePerPeriod) {
  const std::string even_down =
      BankLoan("0.0365", v1::DAY_COUNT_CONVENTION_ACT_365, 1'005'000, "2020-01-31");
  const std::string even_up =
      BankLoan("0.0365", v1::DAY_COUNT_CONVENTION_ACT_365, 1'015'000, "2020-01-31");
  SetToday("2020-02-01");
  EXPECT_EQ(AccrualAmounts(Ok(kCashier, Accrue(even_down))), (std::vector<int64_t>{100}));
  EXPECT_EQ(AccrualAmounts(Ok(kCashier, Accrue(even_up))), (std::vector<int64_t>{102}));
}

TEST_F(SubsidyTest, PayoffPostsTheLastPartialPeriodAndSettlementIsBoundedByWhatIsOwed) {
  const std::string loan =
      BankLoan("0.0435", v1::DAY_COUNT_CONVENTION_ACT_360, 10'000'000, "2020-01-15");
  SetToday("2020-02-11");
  // Payoff on 2020-02-11: January's 17 days and February's 10 days, rounded separately.
  v1::Entry payoff = Ok(kCashier, Repay(loan, 10'000'000));
  const auto& accruals = payoff.event().repayment_recorded().accruals();
  ASSERT_EQ(accruals.size(), 2);
  EXPECT_EQ(accruals[0].amount_fen(), 20'542);
  EXPECT_EQ(accruals[1].end_date(), "2020-02-11");
  EXPECT_EQ(accruals[1].principal_fen_days(), 100'000'000);
  EXPECT_EQ(accruals[1].amount_fen(), 12'083);  // 4,350,000 / 360 = 12,083.33
  const int64_t owed = 20'542 + 12'083;
  EXPECT_EQ(Balance("bank:psbc:subsidy_payable"), -owed);
  v1::Event settle;
  settle.mutable_subsidy_settled()->set_bank_id("psbc");
  settle.mutable_subsidy_settled()->set_amount_fen(owed + 1);
  EXPECT_EQ(ReasonOf(Run(kCashier, settle).status), "EXCEEDS_SUBSIDY_OWED");
  settle.mutable_subsidy_settled()->set_amount_fen(owed);
  Ok(kCashier, settle);
  EXPECT_EQ(Balance("bank:psbc:subsidy_payable"), 0);
  // A union-fund loan has no subsidy.
  DefineProduct("fund", testing::UnionFundTerms());
  Ok(kCashier, Contribute(10'000'000));
  const std::string fund_loan = ActiveLoan(Register("基金"), "fund", 1'000'000, 6);
  SetToday("2020-04-01");
  EXPECT_EQ(ReasonOf(Run(kCashier, Accrue(fund_loan)).status), "NOT_BANK_FUNDED");
}

TEST_F(SubsidyTest, ReversingAnAccrualRestoresThePendingMonths) {
  const std::string loan =
      BankLoan("0.0435", v1::DAY_COUNT_CONVENTION_ACT_360, 10'000'000, "2020-01-15");
  SetToday("2020-03-01");
  v1::Entry accrual = Ok(kCashier, Accrue(loan));
  Ok(kSupervisor, Reverse(accrual.sequence()));
  EXPECT_EQ(Balance("bank:psbc:subsidy_payable"), 0);
  v1::Entry again = Ok(kCashier, Accrue(loan));
  EXPECT_EQ(AccrualAmounts(again), (std::vector<int64_t>{20'542, 35'042}));
}

// Subsidy settled with the bank cannot be taken back by reversing the accrual behind it:
// the bank's payable would become a claim on the bank for money it was paid.
TEST_F(SubsidyTest, AnAccrualAlreadySettledIsReversedOnlyAfterItsSettlement) {
  const std::string loan =
      BankLoan("0.0435", v1::DAY_COUNT_CONVENTION_ACT_360, 10'000'000, "2020-01-15");
  SetToday("2020-03-01");
  v1::Entry accrual = Ok(kCashier, Accrue(loan));
  const int64_t owed = -Balance("bank:psbc:subsidy_payable");
  ASSERT_GT(owed, 0);
  v1::Event settle;
  settle.mutable_subsidy_settled()->set_bank_id("psbc");
  settle.mutable_subsidy_settled()->set_amount_fen(owed - 100);
  v1::Entry settlement = Ok(kCashier, settle);
  const uint64_t head = ledger_->Head().sequence;
  CommandResult refused = Run(kSupervisor, Reverse(accrual.sequence()));
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kFailedPrecondition) << refused.status;
  EXPECT_EQ(ReasonOf(refused.status), "SUBSIDY_ALREADY_SETTLED") << refused.status;
  EXPECT_NE(refused.status.message().find("owes 1.00 on bank:psbc:subsidy_payable"),
            absl::string_view::npos)
      << refused.status;
  EXPECT_EQ(ledger_->Head().sequence, head);
  EXPECT_EQ(Balance("bank:psbc:subsidy_payable"), -100);
  Ok(kSupervisor, Reverse(settlement.sequence()));
  Ok(kSupervisor, Reverse(accrual.sequence()));
  EXPECT_EQ(Balance("bank:psbc:subsidy_payable"), 0);
}

// ---- Listing and rebuild ----------------------------------------------------------------

TEST_F(ProgrammeTest, ListLoansFiltersAndPages) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  DefineProduct("psbc-2020", testing::BankTerms());
  Ok(kCashier, Contribute(100'000'000));
  const std::string a = Register("甲", v1::BORROWER_CATEGORY_ORDINARY_MEMBER, "吉州区");
  const std::string b = Register("乙", v1::BORROWER_CATEGORY_ORDINARY_MEMBER, "青原区");
  for (int i = 0; i < 5; ++i) ActiveLoan(a, "fund-2020", 100'000, 6);
  for (int i = 0; i < 3; ++i) Submit(b, "psbc-2020", 100'000, 6);
  LoanQuery query;
  query.page_size = 3;
  LoanPage first = *ledger_->ListLoans(query);
  ASSERT_EQ(first.loans.size(), 3u);
  EXPECT_EQ(first.loans[0].loan_id(), "L000001");
  query.page_token = first.next_page_token;
  LoanPage second = *ledger_->ListLoans(query);
  ASSERT_EQ(second.loans.size(), 3u);
  EXPECT_EQ(second.loans[0].loan_id(), "L000004");
  query.page_token = second.next_page_token;
  LoanPage third = *ledger_->ListLoans(query);
  EXPECT_EQ(third.loans.size(), 2u);
  EXPECT_TRUE(third.next_page_token.empty());

  LoanQuery by_county;
  by_county.county = "青原区";
  EXPECT_EQ(ledger_->ListLoans(by_county)->loans.size(), 3u);
  LoanQuery by_status;
  by_status.status = v1::LOAN_STATUS_ACTIVE;
  EXPECT_EQ(ledger_->ListLoans(by_status)->loans.size(), 5u);
  LoanQuery by_borrower;
  by_borrower.borrower_id = b;
  by_borrower.product_id = "psbc-2020";
  EXPECT_EQ(ledger_->ListLoans(by_borrower)->loans.size(), 3u);
  LoanQuery by_date;
  by_date.disbursed_from = "2020-01-01";
  by_date.disbursed_to = "2020-01-01";
  EXPECT_EQ(ledger_->ListLoans(by_date)->loans.size(), 5u);
  by_date.disbursed_from = "2020-13-01";
  EXPECT_EQ(ledger_->ListLoans(by_date).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ProgrammeTest, ProjectionsSurviveReopenAndEqualARebuild) {
  DefineProduct("psbc-2020", testing::BankTerms());
  const std::string loan = ActiveLoan(Register("王建国"), "psbc-2020", 10'000'000, 12);
  SetToday("2020-03-05");
  Ok(kCashier, Accrue(loan));
  Ok(kCashier, Repay(loan, 1'000'000));
  const std::string before = Loan(loan).SerializeAsString();
  Reopen();
  EXPECT_EQ(Loan(loan).SerializeAsString(), before);
  auto mismatch = ledger_->CompareProjectionsWithRebuild();
  ASSERT_TRUE(mismatch.ok()) << mismatch.status();
  EXPECT_FALSE(mismatch->has_value()) << (*mismatch)->space << " " << (*mismatch)->key;
  EXPECT_TRUE(ledger_->VerifyJournal().ok());
}

TEST_F(ProgrammeTest, DerivedStateOfAnOlderEngineIsRebuiltWhenTheLedgerOpens) {
  DefineProduct("psbc-2020", testing::BankTerms());
  const std::string loan = ActiveLoan(Register("王建国"), "psbc-2020", 10'000'000, 12);
  SetToday("2020-06-30");
  const ReportQuery year{"2020-01-01", "2020-12-31", {}};
  absl::StatusOr<ProgrammeReport> expected = ledger_->GetProgrammeReport(year);
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_EQ(expected->total.loans_outstanding, 1);
  Reopen();
  EXPECT_FALSE(ledger_->ProjectionsRebuiltOnOpen()) << "current derived state is kept as it is";

  // What an engine before the running stocks left: no projections version, no k/ keys.
  ledger_.reset();
  {
    testing::RawDb raw(dir_.path());
    ASSERT_TRUE(raw.Get("meta", "projections").has_value());
    raw.Delete("meta", "projections");
    int removed = 0;
    for (const auto& [key, value] : raw.All("projections")) {
      if (key.starts_with("k/")) {
        raw.Delete("projections", key);
        ++removed;
      }
    }
    ASSERT_GT(removed, 0);
  }
  Reopen();
  EXPECT_TRUE(ledger_->ProjectionsRebuiltOnOpen());
  absl::StatusOr<ProgrammeReport> report = ledger_->GetProgrammeReport(year);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->total.loans_outstanding, expected->total.loans_outstanding);
  EXPECT_EQ(report->total.outstanding_fen, expected->total.outstanding_fen);
  EXPECT_EQ(report->total.overdue_principal_fen, expected->total.overdue_principal_fen);
  auto mismatch = ledger_->CompareProjectionsWithRebuild();
  ASSERT_TRUE(mismatch.ok()) << mismatch.status();
  EXPECT_FALSE(mismatch->has_value()) << (*mismatch)->space << " " << (*mismatch)->key;
  Reopen();
  EXPECT_FALSE(ledger_->ProjectionsRebuiltOnOpen()) << "the version is recorded after a rebuild";
}

// A period not yet over is reported up to today's business date: at its end, months
// ahead, every installment not yet due would count as overdue and as principal due.
TEST_F(ProgrammeTest, AReportOfAPeriodNotYetOverEndsToday) {
  SetToday("2020-03-01");
  DefineProduct("psbc-2020", testing::BankTerms());
  const std::string loan = ActiveLoan(Register("王建国"), "psbc-2020", 1'200'000, 12);
  SetToday("2020-06-30");
  absl::StatusOr<ProgrammeReport> year =
      ledger_->GetProgrammeReport(ReportQuery{"2020-01-01", "2020-12-31", {}});
  ASSERT_TRUE(year.ok()) << year.status();
  EXPECT_EQ(year->to, "2020-06-30");
  absl::StatusOr<ProgrammeReport> to_today =
      ledger_->GetProgrammeReport(ReportQuery{"2020-01-01", "2020-06-30", {}});
  ASSERT_TRUE(to_today.ok()) << to_today.status();
  absl::StatusOr<LoanStatement> statement = ledger_->GetLoanStatement(loan, "2020-06-30");
  ASSERT_TRUE(statement.ok()) << statement.status();
  EXPECT_GT(statement->delinquency.overdue_principal_fen, 0);
  EXPECT_EQ(year->total.overdue_principal_fen, statement->delinquency.overdue_principal_fen);
  EXPECT_LT(year->total.flows.principal_due_fen(), 1'200'000);
  EXPECT_EQ(year->total.flows.principal_due_fen(), to_today->total.flows.principal_due_fen());
  EXPECT_EQ(year->total.par30_fen, to_today->total.par30_fen);

  absl::StatusOr<ProgrammeReport> ahead =
      ledger_->GetProgrammeReport(ReportQuery{"2020-07-01", "2020-12-31", {}});
  EXPECT_EQ(ahead.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fields(ahead.status()), std::vector<std::string>{"from"});
}

// A page token is the previous page's last id: anything else is INVALID_ARGUMENT, not a
// page started at an arbitrary key (or an empty page that reads as the end of the list).
TEST_F(ProgrammeTest, ABadPageTokenIsRefusedNotAnEmptyPage) {
  DefineProduct("fund-2020", testing::UnionFundTerms());
  const std::string borrower = Register("王建国");
  Register("李秀英");
  Submit(borrower, "fund-2020", 1'000'000, 12);
  Submit(borrower, "fund-2020", 1'000'000, 12);
  for (const char* token : {"zzz", "B000001", "L", "L00000x", "l000001", "L0000000000001"}) {
    LoanQuery loans;
    loans.page_token = token;
    absl::StatusOr<LoanPage> page = ledger_->ListLoans(loans);
    EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_EQ(Fields(page.status()), std::vector<std::string>{"page_token"}) << token;
    loans.borrower_id = borrower;
    EXPECT_EQ(ledger_->ListLoans(loans).status().code(), absl::StatusCode::kInvalidArgument)
        << token;
  }
  BorrowerQuery borrowers;
  borrowers.page_token = "L000001";
  absl::StatusOr<BorrowerPage> refused = ledger_->ListBorrowers(borrowers);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fields(refused.status()), std::vector<std::string>{"page_token"});

  // The tokens the ledger gives lead through every item once.
  LoanQuery first;
  first.page_size = 1;
  absl::StatusOr<LoanPage> page = ledger_->ListLoans(first);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->loans.size(), 1u);
  EXPECT_EQ(page->next_page_token, "L000001");
  first.page_token = page->next_page_token;
  page = ledger_->ListLoans(first);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->loans.size(), 1u);
  EXPECT_EQ(page->loans[0].loan_id(), "L000002");
  borrowers.page_token = "B000001";
  absl::StatusOr<BorrowerPage> rest = ledger_->ListBorrowers(borrowers);
  ASSERT_TRUE(rest.ok()) << rest.status();
  ASSERT_EQ(rest->borrowers.size(), 1u);
  EXPECT_EQ(rest->borrowers[0].borrower_id(), "B000002");
}

// A report over damaged counters refuses with DATA_LOSS naming the first key that does not
// parse; damage further on (here a stock change) does not replace it.
TEST_F(ProgrammeTest, ReportOverDamagedCountersIsDataLossNamingTheFirst) {
  DefineProduct("psbc-2020", testing::BankTerms());
  ActiveLoan(Register("王建国"), "psbc-2020", 10'000'000, 12);
  const ReportQuery year{"2020-01-01", "2020-12-31", {}};
  ledger_.reset();
  std::string counters;
  {
    testing::RawDb raw(dir_.path());
    for (const auto& [key, value] : raw.All("projections")) {
      if (key.starts_with("g/") && counters.empty()) counters = key;
      if (key.starts_with("g/") || key.starts_with("k/")) raw.Put("projections", key, "\xff");
    }
  }
  ASSERT_FALSE(counters.empty());
  Reopen();
  absl::StatusOr<ProgrammeReport> report = ledger_->GetProgrammeReport(year);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(report.status().message(), "report counters under " + counters + " do not parse");
}

}  // namespace
}  // namespace gongdai
