#include "client/table.h"

#include <algorithm>
#include <optional>

namespace gongdai::client {
namespace {

// One decoded UTF-8 sequence: its code point (nullopt when the bytes are not valid
// UTF-8, then `length` is 1) and how many bytes it takes.
struct CodePoint {
  std::optional<char32_t> value;
  size_t length = 1;
};

CodePoint Decode(std::string_view text, size_t at) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char first = byte(at);
  if (first < 0x80) return {first, 1};
  size_t extra = 0;
  char32_t code = 0;
  if ((first & 0xe0) == 0xc0) {
    extra = 1;
    code = first & 0x1f;
  } else if ((first & 0xf0) == 0xe0) {
    extra = 2;
    code = first & 0x0f;
  } else if ((first & 0xf8) == 0xf0) {
    extra = 3;
    code = first & 0x07;
  } else {
    return {std::nullopt, 1};
  }
  if (at + extra >= text.size()) return {std::nullopt, 1};
  for (size_t k = 1; k <= extra; ++k) {
    const unsigned char next = byte(at + k);
    if ((next & 0xc0) != 0x80) return {std::nullopt, 1};
    code = (code << 6) | (next & 0x3f);
  }
  static constexpr char32_t kMinimum[4] = {0, 0x80, 0x800, 0x10000};
  if (code < kMinimum[extra] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
    return {std::nullopt, 1};
  }
  return {code, extra + 1};
}

bool IsWide(char32_t c) {
  return (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) ||
         (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
         (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
         (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x20000 && c <= 0x3fffd);
}

bool IsZeroWidth(char32_t c) {
  return (c >= 0x0300 && c <= 0x036f) || (c >= 0x200b && c <= 0x200f) ||
         (c >= 0xfe00 && c <= 0xfe0f) || c == 0xfeff;
}

bool IsControl(char32_t c) { return c < 0x20 || (c >= 0x7f && c <= 0x9f); }

bool AllDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string GroupThousands(std::string_view digits) {
  std::string out;
  const size_t first = digits.size() % 3 == 0 ? 3 : digits.size() % 3;
  out.append(digits.substr(0, first));
  for (size_t i = first; i < digits.size(); i += 3) {
    out.push_back(',');
    out.append(digits.substr(i, 3));
  }
  return out;
}

// Splits "-123.4" into sign, integer digits and fraction digits; nullopt when `text` is
// not a plain decimal number.
struct Decimal {
  bool negative = false;
  std::string_view integer;
  std::string_view fraction;
};

std::optional<Decimal> SplitDecimal(std::string_view text) {
  Decimal d;
  if (text.starts_with('-')) {
    d.negative = true;
    text.remove_prefix(1);
  }
  const size_t dot = text.find('.');
  d.integer = text.substr(0, dot);
  if (dot != std::string_view::npos) {
    d.fraction = text.substr(dot + 1);
    if (!AllDigits(d.fraction)) return std::nullopt;
  }
  if (!AllDigits(d.integer)) return std::nullopt;
  return d;
}

std::string Pad(const std::string& cell, size_t width, Align align) {
  const size_t used = static_cast<size_t>(DisplayWidth(cell));
  const std::string spaces(width > used ? width - used : 0, ' ');
  return align == Align::kLeft ? cell + spaces : spaces + cell;
}

}  // namespace

int DisplayWidth(std::string_view text) {
  int width = 0;
  for (size_t at = 0; at < text.size();) {
    const CodePoint cp = Decode(text, at);
    at += cp.length;
    if (!cp.value.has_value()) {
      width += 1;
    } else if (IsControl(*cp.value) || IsZeroWidth(*cp.value)) {
      continue;
    } else {
      width += IsWide(*cp.value) ? 2 : 1;
    }
  }
  return width;
}

std::string Printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t at = 0; at < text.size();) {
    const CodePoint cp = Decode(text, at);
    if (!cp.value.has_value()) {
      out.push_back('?');
    } else if (IsControl(*cp.value)) {
      out.push_back(' ');
    } else {
      out.append(text.substr(at, cp.length));
    }
    at += cp.length;
  }
  return out;
}

std::string FormatAmount(std::string_view decimal) {
  if (decimal.empty()) return "";
  const std::optional<Decimal> d = SplitDecimal(decimal);
  if (!d.has_value()) return std::string(decimal);
  std::string fraction(d->fraction);
  if (fraction.size() < 2) fraction.append(2 - fraction.size(), '0');
  std::string integer(d->integer);
  integer.erase(0, std::min(integer.find_first_not_of('0'), integer.size() - 1));  // "007" -> "7"
  const bool zero = integer == "0" && fraction.find_first_not_of('0') == std::string::npos;
  return std::string(d->negative && !zero ? "-" : "") + GroupThousands(integer) + "." + fraction;
}

std::string FormatFen(int64_t fen) {
  const bool negative = fen < 0;
  // Magnitude without overflow for INT64_MIN.
  const uint64_t magnitude =
      negative ? uint64_t{0} - static_cast<uint64_t>(fen) : static_cast<uint64_t>(fen);
  std::string cents = std::to_string(magnitude % 100);
  if (cents.size() < 2) cents.insert(0, "0");
  return std::string(negative ? "-" : "") + GroupThousands(std::to_string(magnitude / 100)) + "." +
         cents;
}

std::string FormatPercent(std::string_view fraction) {
  const std::optional<Decimal> d = SplitDecimal(fraction);
  if (!d.has_value() || d->negative) return std::string(fraction);
  std::string digits(d->fraction);
  if (digits.size() < 4) digits.append(4 - digits.size(), '0');
  // value * 100: the first two fraction digits move to the integer part.
  std::string integer = std::string(d->integer) + digits.substr(0, 2);
  integer.erase(0, std::min(integer.find_first_not_of('0'), integer.size() - 1));
  // Every digit given is shown (a rate of 0.04275 is 4.275%, not 4.27%); trailing zeros
  // beyond two places go.
  std::string rest = digits.substr(2);
  while (rest.size() > 2 && rest.back() == '0') rest.pop_back();
  return integer + "." + rest + "%";
}

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

Table Table::KeyValue() {
  Table table({{"", Align::kLeft}, {"", Align::kLeft}});
  table.header_ = false;
  return table;
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  for (std::string& cell : cells) cell = Printable(cell);
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> widths(columns_.size(), 0);
  for (size_t c = 0; c < columns_.size(); ++c) {
    if (header_) widths[c] = static_cast<size_t>(DisplayWidth(columns_[c].header));
    for (const std::vector<std::string>& row : rows_) {
      widths[c] = std::max(widths[c], static_cast<size_t>(DisplayWidth(row[c])));
    }
  }
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < columns_.size(); ++c) {
      if (c > 0) out += "  ";
      out += Pad(cells[c], widths[c], columns_[c].align);
    }
    return out + "\n";
  };
  std::string out;
  if (header_) {
    std::vector<std::string> headers;
    std::vector<std::string> rules;
    for (size_t c = 0; c < columns_.size(); ++c) {
      headers.push_back(columns_[c].header);
      rules.push_back(std::string(widths[c], '-'));
    }
    out += line(headers);
    out += line(rules);
  }
  for (const std::vector<std::string>& row : rows_) out += line(row);
  return out;
}

}  // namespace gongdai::client
