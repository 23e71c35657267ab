// gongdai entry / fund / subsidy / account / product / portfolio: the journal, the money
// that is not a loan, the products and the programme's figures.
#include <cstdint>
#include <limits>

#include "client/cli.h"
#include "client/product_file.h"
#include "client/render.h"
#include "client/table.h"

namespace gongdai::client {
namespace {

using Stub = v1::LoanLedger::Stub;

// After a write that answers with a receipt only: the confirmation and, for a person, the
// entry it recorded (its postings show which accounts moved).
void PrintEntryResponse(Cli& cli, const std::string& subject, const v1::EntryResponse& response) {
  cli.Print(response, [&] {
    std::string text = Confirmation(subject, response.entry());
    v1::GetEntryRequest get;
    get.set_sequence(response.entry().sequence());
    v1::Entry entry;
    if (cli.TryRead(&Stub::GetEntry, get, &entry)) text += "\n" + RenderEntry(entry);
    return text;
  });
}

void AddEntryCommands(Cli& cli, CLI::App& app) {
  CLI::App* noun =
      cli.Command(app, "entry", "the journal: show and list entries, reverse a financial entry",
                  "gongdai entry list --from 1 --page-size 20");
  noun->require_subcommand(1);

  {
    struct Flags {
      WriteFlags write;
      uint64_t sequence = 0;
      std::string reason;
      bool yes = false;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c = cli.Command(
        *noun, "reverse",
        "reverse a financial entry (for a loan, only its latest); asks for confirmation "
        "(supervisor)",
        "gongdai --as supervisor entry reverse 42 --reason '重复录入的还款' --yes");
    c->add_option("sequence", f->sequence, "the entry's number")
        ->required()
        ->check(Cli::WholeNumber(1, std::numeric_limits<uint64_t>::max()));
    c->add_option("--reason", f->reason, "why, for the record")->required();
    c->add_flag("--yes", f->yes, "do not ask for confirmation (for scripts)");
    cli.AddWriteFlags(c, f->write);
    cli.Action(c, [&cli, f] {
      const std::string number = std::to_string(f->sequence);
      cli.NeedsConfirmation("entry reverse", f->yes);
      cli.Confirm(f->yes, "reverse entry " + number, [&] {
        v1::GetEntryRequest get;
        get.set_sequence(f->sequence);
        v1::Entry entry;
        if (!cli.TryRead(&Stub::GetEntry, get, &entry)) return "Reverse entry " + number + ".\n";
        const EventSummary s = Summarize(entry.event());
        return "Reverse entry " + number + " of " + entry.business_date() + " by " +
               entry.actor().principal_id() + ": " + s.kind +
               (s.subject.empty() ? "" : " " + s.subject) +
               (s.amount.empty() ? "" : " of " + s.amount) + ".\n";
      });
      v1::ReverseEntryRequest request;
      request.set_sequence(f->sequence);
      request.set_reason(f->reason);
      v1::EntryResponse response;
      cli.Write(&Stub::ReverseEntry, f->write, request, &response);
      PrintEntryResponse(cli, "Reversal of entry " + number, response);
    });
  }

  {
    auto sequence = std::make_shared<uint64_t>(0);
    CLI::App* c = cli.Command(*noun, "show", "one journal entry: who, when, what, and its postings",
                              "gongdai entry show 42");
    c->add_option("sequence", *sequence, "the entry's number")
        ->required()
        ->check(Cli::WholeNumber(1, std::numeric_limits<uint64_t>::max()));
    cli.Action(c, [&cli, sequence] {
      v1::GetEntryRequest request;
      request.set_sequence(*sequence);
      v1::Entry entry;
      cli.Read(&Stub::GetEntry, request, &entry);
      cli.Print(entry, [&] { return RenderEntry(entry); });
    });
  }

  {
    struct Flags {
      uint64_t from = 1;
      int page_size = 0;
      bool all = false;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c = cli.Command(*noun, "list", "journal entries in order, from a number on",
                              "gongdai entry list --from 100 --page-size 20");
    c->add_option("--from", f->from, "the first entry's number (default 1)")
        ->check(Cli::WholeNumber(1, std::numeric_limits<uint64_t>::max()));
    c->add_option("--page-size", f->page_size, "how many to show (default 50, at most 500)")
        ->check(CLI::Range(1, 500));
    c->add_flag("--all", f->all, "every entry from --from to the latest");
    cli.Action(c, [&cli, f] {
      v1::ListEntriesRequest request;
      request.set_start_sequence(f->from);
      request.set_page_size(f->page_size);
      v1::ListEntriesResponse response;
      for (;;) {
        v1::ListEntriesResponse page;
        cli.Read(&Stub::ListEntries, request, &page);
        for (v1::Entry& entry : *page.mutable_entries()) *response.add_entries() = std::move(entry);
        response.set_next_sequence(page.next_sequence());
        if (!f->all || page.next_sequence() == 0) break;
        request.set_start_sequence(page.next_sequence());
      }
      cli.Print(response, [&] {
        if (response.entries().empty())
          return std::string("No entries from number " + std::to_string(f->from) + ".\n");
        std::string text = RenderEntries(response.entries());
        if (response.next_sequence() != 0) {
          text += "\nMore: add --from " + std::to_string(response.next_sequence()) +
                  " for the next page.\n";
        }
        return text;
      });
    });
  }
}

void AddFundAndSubsidyCommands(Cli& cli, CLI::App& app) {
  CLI::App* fund =
      cli.Command(app, "fund", "the union's revolving fund: record contributions",
                  "gongdai --as cashier fund contribute --amount 1000000 --source 吉安市总工会");
  fund->require_subcommand(1);
  {
    struct Flags {
      WriteFlags write;
      std::string amount;
      std::string source;
      std::string reference;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c = cli.Command(
        *fund, "contribute", "record money paid into the union's fund (cashier, supervisor)",
        "gongdai --as cashier fund contribute --amount 1000000 --source 吉安市总工会 "
        "--reference 拨款2020-01");
    cli.AddAmount(c, "--amount", f->amount, "the amount contributed")->required();
    c->add_option("--source", f->source, "who gave the money, such as 吉安市总工会")->required();
    c->add_option("--reference", f->reference, "the transfer's reference");
    cli.AddWriteFlags(c, f->write);
    cli.Action(c, [&cli, f] {
      v1::RecordFundContributionRequest request;
      request.set_amount(f->amount);
      request.set_source(f->source);
      request.set_reference(f->reference);
      v1::EntryResponse response;
      cli.Write(&Stub::RecordFundContribution, f->write, request, &response);
      PrintEntryResponse(
          cli, "Fund contribution of " + FormatAmount(f->amount) + " from " + f->source, response);
    });
  }

  CLI::App* subsidy =
      cli.Command(app, "subsidy", "the interest subsidy owed to partner banks: record settlements",
                  "gongdai --as cashier subsidy settle --bank psbc --amount 1234.56");
  subsidy->require_subcommand(1);
  {
    struct Flags {
      WriteFlags write;
      std::string bank;
      std::string amount;
      std::string reference;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c = cli.Command(
        *subsidy, "settle",
        "record subsidy paid to a partner bank, at most what is owed (cashier, supervisor)",
        "gongdai --as cashier subsidy settle --bank psbc --amount 1234.56 --reference 2020Q2贴息");
    c->add_option("--bank", f->bank, "the bank's short id, such as psbc")->required();
    cli.AddAmount(c, "--amount", f->amount, "the amount paid to the bank")->required();
    c->add_option("--reference", f->reference, "the payment's reference");
    cli.AddWriteFlags(c, f->write);
    cli.Action(c, [&cli, f] {
      v1::SettleSubsidyRequest request;
      request.set_bank_id(f->bank);
      request.set_amount(f->amount);
      request.set_reference(f->reference);
      v1::EntryResponse response;
      cli.Write(&Stub::SettleSubsidy, f->write, request, &response);
      PrintEntryResponse(cli, "Subsidy settlement of " + FormatAmount(f->amount) + " to " + f->bank,
                         response);
    });
  }
}

void AddAccountCommands(Cli& cli, CLI::App& app) {
  CLI::App* noun =
      cli.Command(app, "account", "account balances", "gongdai account balance union:fund:cash");
  noun->require_subcommand(1);
  auto account = std::make_shared<std::string>();
  CLI::App* c = cli.Command(*noun, "balance",
                            "an account's balance, debits minus credits (such as union:fund:cash, "
                            "loan:l000001:principal)",
                            "gongdai account balance union:fund:cash\n"
                            "  gongdai account balance loan:L000001:principal");
  c->add_option("account", *account, "the account's colon path (account paths are lower case)")
      ->required();
  cli.Action(c, [&cli, account] {
    // Account paths are lower case, loan ids upper case: "loan:L000001:principal" means
    // the account loan:l000001:principal.
    std::string path = *account;
    for (char& ch : path) {
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    }
    v1::GetAccountBalanceRequest request;
    request.set_account(path);
    v1::AccountBalance balance;
    cli.Read(&Stub::GetAccountBalance, request, &balance);
    cli.Print(balance, [&] { return RenderBalance(balance); });
  });
}

void AddProductCommands(Cli& cli, CLI::App& app) {
  CLI::App* noun = cli.Command(app, "product", "loan products: list, show, define, amend",
                               "gongdai product list");
  noun->require_subcommand(1);

  {
    CLI::App* c = cli.Command(*noun, "list", "every loan product", "gongdai product list");
    cli.Action(c, [&cli] {
      v1::ListProductsResponse response;
      cli.Read(&Stub::ListProducts, v1::ListProductsRequest(), &response);
      cli.Print(response, [&] {
        return response.products().empty() ? std::string("No products are defined.\n")
                                           : RenderProducts(response.products());
      });
    });
  }

  {
    auto id = std::make_shared<std::string>();
    CLI::App* c = cli.Command(*noun, "show", "a product's terms and limits",
                              "gongdai product show fund-2020");
    c->add_option("product-id", *id, "the product, such as fund-2020")->required();
    cli.Action(c, [&cli, id] {
      v1::GetProductRequest request;
      request.set_product_id(*id);
      v1::Product product;
      cli.Read(&Stub::GetProduct, request, &product);
      cli.Print(product, [&] { return RenderProduct(product); });
    });
  }

  // define and amend: the terms come from a file.
  const auto add_terms_command = [&](const std::string& name, const std::string& description,
                                     bool amend) {
    struct Flags {
      WriteFlags write;
      std::string file;
      std::string product_id;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c = cli.Command(
        *noun, name, description,
        "gongdai --as supervisor product " + name + " --file product.toml\n\n" + kProductFileHelp);
    c->add_option("--file", f->file, "the product's terms (TOML, see below)")
        ->required()
        ->check(CLI::ExistingFile);
    c->add_option("--product-id", f->product_id,
                  "the product's id, instead of product_id in the file");
    cli.AddWriteFlags(c, f->write);
    cli.Action(c, [&cli, f, amend] {
      absl::StatusOr<ProductFile> file = ReadProductFile(f->file);
      if (!file.ok()) cli.UsageError(std::string(file.status().message()));
      const std::string product_id = f->product_id.empty() ? file->product_id : f->product_id;
      if (product_id.empty())
        cli.UsageError(f->file + ": give product_id in the file, or --product-id");
      v1::ProductResponse response;
      if (amend) {
        v1::AmendProductRequest request;
        request.set_product_id(product_id);
        *request.mutable_terms() = file->terms;
        cli.Write(&Stub::AmendProduct, f->write, request, &response);
      } else {
        v1::DefineProductRequest request;
        request.set_product_id(product_id);
        *request.mutable_terms() = file->terms;
        cli.Write(&Stub::DefineProduct, f->write, request, &response);
      }
      cli.Print(response, [&] {
        return Confirmation(std::string(amend ? "Amendment" : "Definition") + " of product " +
                                response.product().product_id(),
                            response.entry()) +
               "\n" + RenderProduct(response.product());
      });
    });
  };
  add_terms_command("define", "define a loan product from a file of terms (supervisor, admin)",
                    false);
  add_terms_command(
      "amend", "replace a product's terms; its funding cannot change (supervisor, admin)", true);
}

void AddPortfolioCommand(Cli& cli, CLI::App& app) {
  auto as_of = std::make_shared<std::string>();
  CLI::App* c = cli.Command(app, "portfolio",
                            "the programme's figures: outstanding, overdue, PAR30/PAR90, aging",
                            "gongdai portfolio --as-of 2020-12-31");
  cli.AddDate(c, "--as-of", *as_of, "the figures' date (default: today's business date)");
  cli.Action(c, [&cli, as_of] {
    v1::GetPortfolioRequest request;
    request.set_as_of(*as_of);
    v1::Portfolio portfolio;
    cli.Read(&Stub::GetPortfolio, request, &portfolio);
    cli.Print(portfolio, [&] { return RenderPortfolio(portfolio); });
  });
}

void AddReportCommand(Cli& cli, CLI::App& app) {
  struct Flags {
    int year = 0;
    int quarter = 0;
    int month = 0;
    std::string from;
    std::string to;
    std::vector<std::string> by;
    bool csv = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* c =
      cli.Command(app, "report",
                  "the programme report of a year, quarter, month or date range, grouped by "
                  "county, category, product or funding (a period not yet over: up to today)",
                  "gongdai report --year 2020 --by county\n"
                  "  gongdai report --year 2020 --quarter 2\n"
                  "  gongdai report --from 2020-03-01 --to 2020-06-30 --by product,category");
  CLI::Option* year = c->add_option("--year", f->year, "the year")->check(CLI::Range(1900, 9999));
  c->add_option("--quarter", f->quarter, "a quarter of --year")
      ->check(CLI::Range(1, 4))
      ->needs(year);
  c->add_option("--month", f->month, "a month of --year")->check(CLI::Range(1, 12))->needs(year);
  CLI::Option* from =
      cli.AddDate(c, "--from", f->from, "the first day of the period")->excludes(year);
  CLI::Option* to = cli.AddDate(c, "--to", f->to, "the last day of the period")->excludes(year);
  from->needs(to);
  to->needs(from);
  c->add_flag("--csv", f->csv, "print CSV for a spreadsheet (UTF-8 with BOM) instead of a table");
  c->add_option("--by", f->by, "group the figures by these, in this order")
      ->type_name(ReportDimensionWords().Choices())
      ->delimiter(',')
      ->take_all()
      ->check(CLI::Validator(
          [](std::string& word) -> std::string {
            return ReportDimensionWords().Parse(word).has_value()
                       ? ""
                       : "\"" + word + "\" is not one of " + ReportDimensionWords().Choices();
          },
          ""));
  cli.Action(c, [&cli, f] {
    if (f->year == 0 && f->from.empty()) {
      cli.UsageError(
          "report: give the period: --year (with --quarter or --month), or --from and --to");
    }
    v1::GetProgrammeReportRequest request;
    request.set_year(f->year);
    request.set_quarter(f->quarter);
    request.set_month(f->month);
    request.set_from(f->from);
    request.set_to(f->to);
    for (const std::string& word : f->by) {
      request.add_group_by(
          static_cast<v1::ReportDimension>(ReportDimensionWords().Parse(word).value_or(0)));
    }
    v1::ProgrammeReport report;
    cli.Read(&Stub::GetProgrammeReport, request, &report);
    cli.Print(report, [&] {
      return f->csv ? RenderProgrammeReportCsv(report) : RenderProgrammeReport(report);
    });
  });
}

}  // namespace

void AddLedgerCommands(Cli& cli, CLI::App& app) {
  AddEntryCommands(cli, app);
  AddFundAndSubsidyCommands(cli, app);
  AddAccountCommands(cli, app);
  AddProductCommands(cli, app);
  AddPortfolioCommand(cli, app);
  AddReportCommand(cli, app);
}

}  // namespace gongdai::client
