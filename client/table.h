// Text output for people: tables whose columns line up when they hold Chinese text, and
// amounts the way a cashier reads them ("1,234,567.50").
#ifndef GONGDAI_CLIENT_TABLE_H_
#define GONGDAI_CLIENT_TABLE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gongdai::client {

// Columns `text` (UTF-8) takes on a terminal: East Asian wide and fullwidth characters
// (U+1100-115F, U+2E80-A4CF, U+AC00-D7A3, U+F900-FAFF, U+FE30-FE4F, U+FF00-FF60,
// U+FFE0-FFE6, U+20000-3FFFD) take 2, combining marks and zero-width characters 0,
// everything else 1. A byte that is not valid UTF-8 counts as one column.
int DisplayWidth(std::string_view text);

// `text` made safe to print in one cell: control characters (including newlines and
// escape sequences) become spaces and bytes that are not valid UTF-8 become '?'.
std::string Printable(std::string_view text);

// A decimal amount in yuan ("1234567.5", "-12", "0.00") with thousands separators and
// two decimals ("1,234,567.50", "-12.00", "0.00"). Empty stays empty; text that is not a
// decimal number is returned unchanged.
std::string FormatAmount(std::string_view decimal);

// Whole fen as FormatAmount shows them: 123456 -> "1,234.56".
std::string FormatFen(int64_t fen);

// A decimal fraction as a percentage, with at least two decimals and every digit given:
// "0.0525" -> "5.25%", "0.04275" -> "4.275%".
std::string FormatPercent(std::string_view fraction);

enum class Align { kLeft, kRight };

// Rows of cells printed in aligned columns two spaces apart, with a header line and a
// rule under it. Every line is padded to the full width of the table.
class Table {
 public:
  struct Column {
    std::string header;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns);
  // Two left-aligned columns (a label and its value) without a header.
  static Table KeyValue();

  void AddRow(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }
  std::string Render() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
  bool header_ = true;
};

}  // namespace gongdai::client

#endif  // GONGDAI_CLIENT_TABLE_H_
