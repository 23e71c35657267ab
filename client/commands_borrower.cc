// gongdai borrower ...: the talent pool.
#include "client/cli.h"
#include "client/render.h"

namespace gongdai::client {
namespace {

using Stub = v1::LoanLedger::Stub;

// The borrower's details as flags; for `update`, only the flags given change.
struct DetailFlags {
  std::string name;
  std::string phone;
  std::string member_no;
  int category = 0;
  std::string county;
  std::string enterprise;
  std::string sector;
};

void AddDetailFlags(Cli& cli, CLI::App* command, DetailFlags& d, bool required) {
  const auto option = [&](const std::string& name, std::string& target,
                          const std::string& description) {
    CLI::Option* o = command->add_option(name, target, description);
    if (required) o->required();
  };
  option("--name", d.name, "full name, such as 刘秀英");
  option("--phone", d.phone, "11-digit mobile number");
  option("--member-no", d.member_no, "trade-union membership number");
  CLI::Option* category =
      cli.AddWord(command, "--category", d.category, CategoryWords(), "borrower category");
  if (required) category->required();
  option("--county", d.county, "county or district, such as 吉州区");
  option("--enterprise", d.enterprise, "name of the borrower's business");
  option("--sector", d.sector, "line of business, such as 乡村旅游");
}

// Sets the details the flags give; returns how many.
int ApplyDetails(const DetailFlags& d, v1::BorrowerDetailsInput* out) {
  int changed = 0;
  const auto set = [&](const std::string& value, std::string* field) {
    if (value.empty()) return;
    *field = value;
    ++changed;
  };
  set(d.name, out->mutable_name());
  set(d.phone, out->mutable_phone());
  set(d.member_no, out->mutable_union_member_number());
  if (d.category != 0) {
    out->set_category(static_cast<v1::BorrowerCategory>(d.category));
    ++changed;
  }
  set(d.county, out->mutable_county());
  set(d.enterprise, out->mutable_enterprise_name());
  set(d.sector, out->mutable_sector());
  return changed;
}

void PrintBorrowerResponse(Cli& cli, const std::string& what,
                           const v1::BorrowerResponse& response) {
  cli.Print(response, [&] {
    return Confirmation(what + " of borrower " + response.borrower().borrower_id(),
                        response.entry()) +
           "\n" + RenderBorrower(response.borrower());
  });
}

void AddStatusCommand(Cli& cli, CLI::App& noun, const std::string& name,
                      v1::TalentPoolStatus status, const std::string& description,
                      const std::string& what) {
  struct Flags {
    WriteFlags write;
    std::string borrower_id;
    std::string reason;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* c = cli.Command(
      noun, name, description,
      "gongdai borrower " + name + " B000001 --reason '" +
          (status == v1::TALENT_POOL_STATUS_ACTIVE ? "复核通过" : "逾期未还，暂停") + "'");
  c->add_option("borrower-id", f->borrower_id, "the borrower, such as B000001")->required();
  c->add_option("--reason", f->reason, "why, for the record")->required();
  cli.AddWriteFlags(c, f->write);
  cli.Action(c, [&cli, f, status, what] {
    v1::ChangeTalentPoolStatusRequest request;
    request.set_borrower_id(f->borrower_id);
    request.set_status(status);
    request.set_reason(f->reason);
    v1::BorrowerResponse response;
    cli.Write(&Stub::ChangeTalentPoolStatus, f->write, request, &response);
    PrintBorrowerResponse(cli, what, response);
  });
}

}  // namespace

void AddBorrowerCommands(Cli& cli, CLI::App& app) {
  CLI::App* noun = cli.Command(
      app, "borrower", "the talent pool: register, show, list, update, suspend, reinstate, remove",
      "gongdai borrower list --status active --county 吉州区");
  noun->require_subcommand(1);

  {
    struct Flags {
      WriteFlags write;
      std::string national_id;
      DetailFlags details;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c = cli.Command(
        *noun, "register", "register a borrower in the talent pool (officer, supervisor)",
        "gongdai borrower register --national-id 360802198506121016 --name 刘秀英 \\\n"
        "      --phone 13907961234 --member-no JA-0001 --category ordinary-member \\\n"
        "      --county 吉州区 --enterprise 秀英农家乐 --sector 乡村旅游");
    c->add_option("--national-id", f->national_id, "18-character resident identity card number")
        ->required();
    AddDetailFlags(cli, c, f->details, /*required=*/true);
    cli.AddWriteFlags(c, f->write);
    cli.Action(c, [&cli, f] {
      v1::RegisterBorrowerRequest request;
      request.set_national_id(f->national_id);
      ApplyDetails(f->details, request.mutable_details());
      v1::BorrowerResponse response;
      cli.Write(&Stub::RegisterBorrower, f->write, request, &response);
      PrintBorrowerResponse(cli, "Registration", response);
    });
  }

  {
    auto id = std::make_shared<std::string>();
    CLI::App* c =
        cli.Command(*noun, "show", "a borrower's details", "gongdai borrower show B000001");
    c->add_option("borrower-id", *id, "the borrower, such as B000001")->required();
    cli.Action(c, [&cli, id] {
      v1::GetBorrowerRequest request;
      request.set_borrower_id(*id);
      v1::Borrower borrower;
      cli.Read(&Stub::GetBorrower, request, &borrower);
      cli.Print(borrower, [&] { return RenderBorrower(borrower); });
    });
  }

  {
    struct Flags {
      int status = 0;
      std::string county;
      PageFlags page;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c = cli.Command(*noun, "list", "borrowers of the talent pool, by status and county",
                              "gongdai borrower list --status active --county 吉州区 --all");
    cli.AddWord(c, "--status", f->status, TalentPoolWords(), "only borrowers with this status");
    c->add_option("--county", f->county, "only borrowers of this county or district");
    cli.AddPageFlags(c, f->page);
    cli.Action(c, [&cli, f] {
      v1::ListBorrowersRequest request;
      request.set_status(static_cast<v1::TalentPoolStatus>(f->status));
      request.set_county(f->county);
      v1::ListBorrowersResponse response;
      ReadPages(cli, &Stub::ListBorrowers, request, f->page, &response,
                [](v1::ListBorrowersResponse& r) { return r.mutable_borrowers(); });
      cli.Print(response, [&] {
        if (response.borrowers().empty()) return std::string("No borrowers match.\n");
        return RenderBorrowers(response.borrowers()) + MorePages(response.next_page_token());
      });
    });
  }

  {
    struct Flags {
      WriteFlags write;
      std::string borrower_id;
      DetailFlags details;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c =
        cli.Command(*noun, "update",
                    "change a borrower's details; the flags given change, the rest stay (officer, "
                    "supervisor)",
                    "gongdai borrower update B000001 --phone 13907965678 --sector 餐饮");
    c->add_option("borrower-id", f->borrower_id, "the borrower, such as B000001")->required();
    AddDetailFlags(cli, c, f->details, /*required=*/false);
    cli.AddWriteFlags(c, f->write);
    cli.Action(c, [&cli, f] {
      v1::UpdateBorrowerRequest request;
      request.set_borrower_id(f->borrower_id);
      // The API takes the complete new details: start from the current ones.
      if (ApplyDetails(f->details, request.mutable_details()) == 0) {
        cli.UsageError(
            "borrower update: give at least one detail to change (--name, --phone, --member-no, "
            "--category, --county, --enterprise, --sector)");
      }
      v1::GetBorrowerRequest get;
      get.set_borrower_id(f->borrower_id);
      v1::Borrower current;
      cli.Read(&Stub::GetBorrower, get, &current);
      v1::BorrowerDetailsInput* d = request.mutable_details();
      d->set_name(current.name());
      d->set_phone(current.phone());
      d->set_union_member_number(current.union_member_number());
      d->set_category(current.category());
      d->set_county(current.county());
      d->set_enterprise_name(current.enterprise_name());
      d->set_sector(current.sector());
      ApplyDetails(f->details, d);
      // Made from this version: if another change lands in between, the server refuses
      // this one (BORROWER_CHANGED) rather than let it undo the other.
      request.set_expected_version(current.version());
      v1::BorrowerResponse response;
      cli.Write(&Stub::UpdateBorrower, f->write, request, &response);
      PrintBorrowerResponse(cli, "Update", response);
    });
  }

  AddStatusCommand(cli, *noun, "suspend", v1::TALENT_POOL_STATUS_SUSPENDED,
                   "suspend a borrower: no new applications until reinstated (officer, supervisor)",
                   "Suspension");
  AddStatusCommand(cli, *noun, "reinstate", v1::TALENT_POOL_STATUS_ACTIVE,
                   "make a suspended or removed borrower active again (officer, supervisor)",
                   "Reinstatement");
  AddStatusCommand(cli, *noun, "remove", v1::TALENT_POOL_STATUS_REMOVED,
                   "remove a borrower from the talent pool (officer, supervisor)", "Removal");
}

}  // namespace gongdai::client
