"""The mini-scale problem set: original easy competitive-programming problems with test data.

Each :class:`MiniProblem` has a statement in the CodeContests style (Input, Output, Examples), a
Python solver that defines the expected output, hand-picked example inputs, edge cases and a
random input generator. :func:`build_problems` turns them into records in the CodeContests format
(``name``, ``description``, ``public_tests``, ``private_tests``, ``generated_tests`` with
``{"input": [...], "output": [...]}``), deterministically from a fixed seed. A reference Rust
solution for every problem lives in ``reference/programs/<name>.rs``; a test checks that each one
passes all of its problem's tests.

The problems were written for this project; none is copied from a contest.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from math import gcd
from typing import Any

Gen = Callable[[random.Random], str]
MOD = 1_000_000_007


@dataclass(frozen=True)
class MiniProblem:
    """One original easy problem."""

    name: str
    statement: str
    solve: Callable[[str], str]
    examples: tuple[str, ...]
    edge: tuple[str, ...]
    gen: Gen
    extra: dict[str, Any] = field(default_factory=dict)


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split()]


def _arr(rng: random.Random, n: int, lo: int, hi: int) -> str:
    return " ".join(str(rng.randint(lo, hi)) for _ in range(n))


def _words(rng: random.Random, n: int, alphabet: str = "abcde", lo: int = 1, hi: int = 5) -> str:
    return " ".join(
        "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi))) for _ in range(n)
    )


def _lines(*rows: object) -> str:
    return "\n".join(str(r) for r in rows) + "\n"


# ----- solvers -------------------------------------------------------------------------------
def _sum_list(inp: str) -> str:
    v = _ints(inp)
    return str(sum(v[1 : 1 + v[0]]))


def _spread(inp: str) -> str:
    v = _ints(inp)[1:]
    return str(max(v) - min(v))


def _count_even(inp: str) -> str:
    v = _ints(inp)[1:]
    return str(sum(1 for x in v if x % 2 == 0))


def _reverse_words(inp: str) -> str:
    return " ".join(reversed(inp.split()))


def _palindromes(inp: str) -> str:
    words = inp.split()[1:]
    return "\n".join("YES" if w == w[::-1] else "NO" for w in words)


def _vowels(inp: str) -> str:
    return str(sum(1 for c in inp.strip() if c in "aeiou"))


def _fizzbuzz(inp: str) -> str:
    n = int(inp)
    out = []
    for i in range(1, n + 1):
        s = ("Fizz" if i % 3 == 0 else "") + ("Buzz" if i % 5 == 0 else "")
        out.append(s or str(i))
    return "\n".join(out)


def _gcd_lcm(inp: str) -> str:
    v = _ints(inp)
    out = []
    for i in range(v[0]):
        a, b = v[1 + 2 * i], v[2 + 2 * i]
        g = gcd(a, b)
        out.append(f"{g} {a // g * b}")
    return "\n".join(out)


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def _primes(inp: str) -> str:
    v = _ints(inp)[1:]
    return "\n".join("YES" if _is_prime(x) else "NO" for x in v)


def _digit_sums(inp: str) -> str:
    return "\n".join(str(sum(int(c) for c in t)) for t in inp.split()[1:])


def _second_largest(inp: str) -> str:
    v = sorted(set(_ints(inp)[1:]), reverse=True)
    return str(v[1]) if len(v) > 1 else "-1"


def _prefix_sums(inp: str) -> str:
    v = _ints(inp)[1:]
    out, s = [], 0
    for x in v:
        s += x
        out.append(str(s))
    return " ".join(out)


def _brackets(inp: str) -> str:
    pairs = {")": "(", "]": "[", "}": "{"}
    out = []
    for s in inp.split()[1:]:
        stack: list[str] = []
        ok = True
        for c in s:
            if c in "([{":
                stack.append(c)
            elif not stack or stack.pop() != pairs[c]:
                ok = False
                break
        out.append("YES" if ok and not stack else "NO")
    return "\n".join(out)


def _anagrams(inp: str) -> str:
    a, b = inp.split()
    return "YES" if sorted(a) == sorted(b) else "NO"


def _collatz(inp: str) -> str:
    n, steps = int(inp), 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return str(steps)


def _binary(inp: str) -> str:
    return "\n".join(bin(x)[2:] for x in _ints(inp)[1:])


def _distinct(inp: str) -> str:
    return str(len(set(_ints(inp)[1:])))


def _majority(inp: str) -> str:
    v = _ints(inp)[1:]
    value, count = Counter(v).most_common(1)[0]
    return str(value) if 2 * count > len(v) else "-1"


def _transpose(inp: str) -> str:
    v = _ints(inp)
    r, c = v[0], v[1]
    m = [v[2 + i * c : 2 + (i + 1) * c] for i in range(r)]
    return "\n".join(" ".join(str(m[i][j]) for i in range(r)) for j in range(c))


def _rotate(inp: str) -> str:
    v = _ints(inp)
    n, k = v[0], v[1]
    a = v[2 : 2 + n]
    k %= n
    return " ".join(str(x) for x in (a[n - k :] + a[: n - k]))


def _longest_run(inp: str) -> str:
    v = _ints(inp)[1:]
    best = cur = 1
    for i in range(1, len(v)):
        cur = cur + 1 if v[i] == v[i - 1] else 1
        best = max(best, cur)
    return str(best)


def _caesar(inp: str) -> str:
    k_text, s = inp.split()
    k = int(k_text)
    return "".join(chr((ord(c) - 97 + k) % 26 + 97) for c in s)


def _triangular(inp: str) -> str:
    n = int(inp)
    return str(n * (n + 1) // 2 % MOD)


def _fib(inp: str) -> str:
    n = int(inp)
    a, b = 0, 1
    for _ in range(n):
        a, b = b, (a + b) % MOD
    return str(a)


def _kth(inp: str) -> str:
    v = _ints(inp)
    n, k = v[0], v[1]
    return str(sorted(v[2 : 2 + n])[k - 1])


def _top_word(inp: str) -> str:
    words = inp.split()[1:]
    counts = Counter(words)
    best = max(counts.values())
    word = min(w for w, c in counts.items() if c == best)
    return f"{word} {best}"


def _islands(inp: str) -> str:
    lines = inp.split()
    r, c = int(lines[0]), int(lines[1])
    grid = [list(row) for row in lines[2 : 2 + r]]
    count = 0
    for i in range(r):
        for j in range(c):
            if grid[i][j] != "#":
                continue
            count += 1
            stack = [(i, j)]
            grid[i][j] = "."
            while stack:
                y, x = stack.pop()
                for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < r and 0 <= nx < c and grid[ny][nx] == "#":
                        grid[ny][nx] = "."
                        stack.append((ny, nx))
    return str(count)


def _pair_sum(inp: str) -> str:
    v = _ints(inp)
    n, target = v[0], v[1]
    seen: set[int] = set()
    for x in v[2 : 2 + n]:
        if target - x in seen:
            return "YES"
        seen.add(x)
    return "NO"


def _coins(inp: str) -> str:
    out = []
    for amount in _ints(inp)[1:]:
        count = 0
        for coin in (25, 10, 5, 1):
            count += amount // coin
            amount %= coin
        out.append(str(count))
    return "\n".join(out)


def _leap(inp: str) -> str:
    a, b = _ints(inp)

    def upto(y: int) -> int:
        return y // 4 - y // 100 + y // 400

    return str(upto(b) - upto(a - 1))


def _triangle(inp: str) -> str:
    out = []
    v = _ints(inp)
    for i in range(v[0]):
        a, b, c = sorted(v[1 + 3 * i : 4 + 3 * i])
        if a + b <= c:
            out.append("invalid")
        elif a == c:
            out.append("equilateral")
        elif a == b or b == c:
            out.append("isosceles")
        else:
            out.append("scalene")
    return "\n".join(out)


def _rle(inp: str) -> str:
    s = inp.strip()
    out, i = [], 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        out.append(f"{s[i]}{j - i}")
        i = j
    return "".join(out)


def _kadane(inp: str) -> str:
    v = _ints(inp)[1:]
    best = cur = v[0]
    for x in v[1:]:
        cur = max(x, cur + x)
        best = max(best, cur)
    return str(best)


def _segments(inp: str) -> str:
    v = _ints(inp)
    segs = sorted((v[1 + 2 * i], v[2 + 2 * i]) for i in range(v[0]))
    count, end = 0, None
    for lo, hi in segs:
        if end is None or lo > end:
            count += 1
            end = hi
        else:
            end = max(end, hi)
    return str(count)


def _stairs(inp: str) -> str:
    n = int(inp)
    a, b = 1, 1
    for _ in range(n - 1):
        a, b = b, (a + b) % MOD
    return str(b if n >= 1 else 1)


# ----- generators ----------------------------------------------------------------------------
def _gen_list(lo: int, hi: int, nmax: int) -> Gen:
    def gen(rng: random.Random) -> str:
        n = rng.randint(1, nmax)
        return _lines(n, _arr(rng, n, lo, hi))

    return gen


def _gen_count_of(make: Callable[[random.Random], str], tmax: int) -> Gen:
    def gen(rng: random.Random) -> str:
        t = rng.randint(1, tmax)
        return _lines(t, *[make(rng) for _ in range(t)])

    return gen


def _gen_word_palindrome(rng: random.Random) -> str:
    half = "".join(rng.choice("ab") for _ in range(rng.randint(0, 4)))
    mid = rng.choice(["", "a", "c"])
    w = half + mid + half[::-1]
    if rng.random() < 0.4:
        w = w + rng.choice("abz")
    return w or "q"


def _gen_brackets(rng: random.Random) -> str:
    if rng.random() < 0.5:
        s = ""
        for _ in range(rng.randint(1, 6)):
            o, c = rng.choice([("(", ")"), ("[", "]"), ("{", "}")])
            s = o + s + c if rng.random() < 0.5 else s + o + c
        return s
    return "".join(rng.choice("()[]{}") for _ in range(rng.randint(1, 10)))


def _gen_anagram(rng: random.Random) -> str:
    a = "".join(rng.choice("abcd") for _ in range(rng.randint(1, 12)))
    b = list(a)
    rng.shuffle(b)
    if rng.random() < 0.5:
        b[rng.randrange(len(b))] = rng.choice("abcde")
    return _lines(a, "".join(b))


def _gen_matrix(rng: random.Random) -> str:
    r, c = rng.randint(1, 6), rng.randint(1, 6)
    return _lines(f"{r} {c}", *[_arr(rng, c, -9, 99) for _ in range(r)])


def _gen_rotate(rng: random.Random) -> str:
    n = rng.randint(1, 12)
    return _lines(f"{n} {rng.randint(0, 10**9)}", _arr(rng, n, -50, 50))


def _gen_runs(rng: random.Random) -> str:
    vals: list[str] = []
    while len(vals) < rng.randint(1, 30):
        vals += [str(rng.randint(1, 3))] * rng.randint(1, 4)
    return _lines(len(vals), " ".join(vals))


def _gen_kth(rng: random.Random) -> str:
    n = rng.randint(1, 20)
    return _lines(f"{n} {rng.randint(1, n)}", _arr(rng, n, -100, 100))


def _gen_grid(rng: random.Random) -> str:
    r, c = rng.randint(1, 8), rng.randint(1, 8)
    p = rng.random()
    rows = ["".join("#" if rng.random() < p else "." for _ in range(c)) for _ in range(r)]
    return _lines(f"{r} {c}", *rows)


def _gen_pair(rng: random.Random) -> str:
    n = rng.randint(1, 15)
    return _lines(f"{n} {rng.randint(-20, 20)}", _arr(rng, n, -10, 10))


def _gen_majority(rng: random.Random) -> str:
    n = rng.randint(1, 15)
    if rng.random() < 0.5:
        k = n // 2 + 1
        vals = [7] * k + [rng.randint(0, 9) for _ in range(n - k)]
    else:
        vals = [rng.randint(0, 3) for _ in range(n)]
    rng.shuffle(vals)
    return _lines(n, " ".join(map(str, vals)))


def _gen_segments(rng: random.Random) -> str:
    n = rng.randint(1, 10)
    rows = []
    for _ in range(n):
        lo = rng.randint(0, 40)
        rows.append(f"{lo} {lo + rng.randint(0, 8)}")
    return _lines(n, *rows)


def _gen_triangles(rng: random.Random) -> str:
    t = rng.randint(1, 8)
    rows = []
    for _ in range(t):
        if rng.random() < 0.3:
            a = rng.randint(1, 5)
            rows.append(f"{a} {a} {rng.choice([a, rng.randint(1, 9)])}")
        else:
            rows.append(_arr(rng, 3, 1, 12))
    return _lines(t, *rows)


def _gen_words_freq(rng: random.Random) -> str:
    n = rng.randint(1, 20)
    return _lines(n, _words(rng, n, "abc", 1, 2))


def _gen_rle(rng: random.Random) -> str:
    return _lines("".join(rng.choice("aab") * rng.randint(1, 3) for _ in range(rng.randint(1, 12))))


# ----- the problems --------------------------------------------------------------------------
def _statement(title: str, body: str, inp: str, out: str) -> str:
    return f"{title}\n\n{body}\n\nInput\n\n{inp}\n\nOutput\n\n{out}\n"


PROBLEMS: tuple[MiniProblem, ...] = (
    MiniProblem(
        "sum_of_list",
        _statement(
            "Sum of a List",
            "Mira wrote n integers on a whiteboard. Print their sum.",
            "The first line contains n (1 <= n <= 100000). The second line contains n integers "
            "a_i (-10^12 <= a_i <= 10^12).",
            "Print one integer: the sum of all a_i.",
        ),
        _sum_list,
        (_lines(3, "1 2 3"), _lines(2, "-5 5")),
        (_lines(1, "1000000000000"), _lines(4, "1000000000000 1000000000000 999999999999 -1")),
        _gen_list(-(10**12), 10**12, 30),
    ),
    MiniProblem(
        "spread",
        _statement(
            "Spread",
            "The spread of a list of temperatures is its largest value minus its smallest value. "
            "Compute it.",
            "The first line contains n (1 <= n <= 1000). The second line contains n integers "
            "t_i (-10^9 <= t_i <= 10^9).",
            "Print the spread.",
        ),
        _spread,
        (_lines(4, "3 -2 7 1"), _lines(1, "42")),
        (_lines(2, "-1000000000 1000000000"), _lines(3, "5 5 5")),
        _gen_list(-(10**9), 10**9, 25),
    ),
    MiniProblem(
        "count_even",
        _statement(
            "Even Count",
            "Count how many of the given numbers are even. Zero and negative even numbers count.",
            "The first line contains n (1 <= n <= 1000). The second line contains n integers "
            "(-10^9 <= a_i <= 10^9).",
            "Print the number of even a_i.",
        ),
        _count_even,
        (_lines(5, "1 2 3 4 5"), _lines(3, "0 -2 -3")),
        (_lines(1, "7"), _lines(2, "-1000000000 999999999")),
        _gen_list(-(10**9), 10**9, 25),
    ),
    MiniProblem(
        "reverse_words",
        _statement(
            "Backwards Sentence",
            "Print the words of a sentence in reverse order, separated by single spaces.",
            "One line with between 1 and 100 words of lowercase letters, separated by single "
            "spaces.",
            "The words in reverse order on one line.",
        ),
        _reverse_words,
        (_lines("hello big world"), _lines("single")),
        (_lines("a b"), _lines("x x y")),
        lambda rng: _lines(_words(rng, rng.randint(1, 12))),
    ),
    MiniProblem(
        "palindromes",
        _statement(
            "Palindrome Check",
            "A word is a palindrome if it reads the same forwards and backwards. For each word "
            "say whether it is a palindrome.",
            "The first line contains t (1 <= t <= 100). Each of the next t lines contains a "
            "word of 1 to 50 lowercase letters.",
            "For each word print YES if it is a palindrome and NO otherwise, one per line.",
        ),
        _palindromes,
        (_lines(3, "level", "rust", "a"), _lines(2, "abba", "abca")),
        (_lines(1, "ab"), _lines(2, "aa", "aba")),
        _gen_count_of(_gen_word_palindrome, 8),
    ),
    MiniProblem(
        "vowel_count",
        _statement(
            "Vowels",
            "Count the vowels (a, e, i, o, u) in a string of lowercase letters.",
            "One line with a string of 1 to 1000 lowercase letters.",
            "Print the number of vowels.",
        ),
        _vowels,
        (_lines("programming"), _lines("rhythm")),
        (_lines("aeiou"), _lines("z")),
        lambda rng: _lines(
            "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 60)))
        ),
    ),
    MiniProblem(
        "fizzbuzz",
        _statement(
            "FizzBuzz",
            "For every i from 1 to n print Fizz if i is divisible by 3, Buzz if it is "
            "divisible by 5, FizzBuzz if it is divisible by both, and the number i otherwise.",
            "One integer n (1 <= n <= 10000).",
            "n lines as described.",
        ),
        _fizzbuzz,
        (_lines(5), _lines(15)),
        (_lines(1), _lines(3)),
        lambda rng: _lines(rng.randint(1, 200)),
    ),
    MiniProblem(
        "gcd_lcm",
        _statement(
            "Divisors and Multiples",
            "For each pair of positive integers print their greatest common divisor and their "
            "least common multiple.",
            "The first line contains t (1 <= t <= 100). Each of the next t lines contains two "
            "integers a and b (1 <= a, b <= 10^9).",
            "For each pair print gcd(a, b) and lcm(a, b) separated by a space.",
        ),
        _gcd_lcm,
        (_lines(2, "4 6", "7 7"), _lines(1, "12 18")),
        (_lines(1, "1000000000 999999999"), _lines(1, "1 1")),
        _gen_count_of(lambda rng: f"{rng.randint(1, 10**9)} {rng.randint(1, 10**5)}", 6),
    ),
    MiniProblem(
        "prime_check",
        _statement(
            "Prime or Not",
            "For each number decide whether it is prime.",
            "The first line contains t (1 <= t <= 50). Each of the next t lines contains an "
            "integer n (1 <= n <= 10^9).",
            "For each n print YES if n is prime and NO otherwise.",
        ),
        _primes,
        (_lines(3, 2, 9, 13), _lines(2, 1, 97)),
        (_lines(2, 999999937, 1000000000), _lines(1, 4)),
        _gen_count_of(lambda rng: str(rng.randint(1, 10**6)), 10),
    ),
    MiniProblem(
        "digit_sum",
        _statement(
            "Digit Sums",
            "For each number print the sum of its decimal digits.",
            "The first line contains t (1 <= t <= 100). Each of the next t lines contains an "
            "integer n (0 <= n <= 10^18).",
            "For each n print the sum of its digits.",
        ),
        _digit_sums,
        (_lines(2, 123, 0), _lines(1, 9999)),
        (_lines(1, 10**18), _lines(1, 999999999999999999)),
        _gen_count_of(lambda rng: str(rng.randint(0, 10**18)), 8),
    ),
    MiniProblem(
        "second_largest",
        _statement(
            "Runner-up",
            "Print the second largest distinct value in the list, or -1 if all values are equal.",
            "The first line contains n (1 <= n <= 1000). The second line contains n integers "
            "(-10^9 <= a_i <= 10^9).",
            "The second largest distinct value, or -1.",
        ),
        _second_largest,
        (_lines(5, "4 1 4 3 2"), _lines(3, "6 6 6")),
        (_lines(1, "5"), _lines(2, "-1 -1000000000")),
        _gen_list(-5, 5, 10),
    ),
    MiniProblem(
        "prefix_sums",
        _statement(
            "Running Total",
            "Print the running totals of a list: the i-th printed number is the sum of the first "
            "i numbers.",
            "The first line contains n (1 <= n <= 1000). The second line contains n integers "
            "(-10^9 <= a_i <= 10^9).",
            "n integers on one line separated by spaces.",
        ),
        _prefix_sums,
        (_lines(4, "1 2 3 4"), _lines(3, "5 -5 5")),
        (_lines(3, "1000000000 1000000000 1000000000"), _lines(1, "-7")),
        _gen_list(-(10**9), 10**9, 20),
    ),
    MiniProblem(
        "brackets",
        _statement(
            "Balanced Brackets",
            "A string of the characters ()[]{} is balanced if every opening bracket is closed by "
            "the matching bracket in the right order. Check each string.",
            "The first line contains t (1 <= t <= 100). Each of the next t lines contains a "
            "non-empty string of at most 100 bracket characters.",
            "For each string print YES if it is balanced and NO otherwise.",
        ),
        _brackets,
        (_lines(3, "([]{})", "([)]", "(("), _lines(1, "{}")),
        (_lines(1, ")("), _lines(2, "]", "[[]]")),
        _gen_count_of(_gen_brackets, 8),
    ),
    MiniProblem(
        "anagrams",
        _statement(
            "Anagram Test",
            "Two words are anagrams if one can be rearranged into the other. Decide whether the "
            "two given words are anagrams.",
            "Two lines, each with a word of 1 to 100 lowercase letters.",
            "YES or NO.",
        ),
        _anagrams,
        (_lines("listen", "silent"), _lines("abc", "abd")),
        (_lines("a", "aa"), _lines("ab", "ba")),
        _gen_anagram,
    ),
    MiniProblem(
        "collatz",
        _statement(
            "Collatz Steps",
            "Starting from n, repeatedly replace n by n/2 if it is even and by 3n+1 if it is "
            "odd. Count the replacements until n becomes 1.",
            "One integer n (1 <= n <= 10^6).",
            "The number of steps.",
        ),
        _collatz,
        (_lines(6), _lines(1)),
        (_lines(837799), _lines(2)),
        lambda rng: _lines(rng.randint(1, 10**6)),
    ),
    MiniProblem(
        "binary",
        _statement(
            "To Binary",
            "Write each number in base 2 without leading zeros.",
            "The first line contains t (1 <= t <= 100). Each of the next t lines contains an "
            "integer n (0 <= n <= 10^18).",
            "For each n its binary representation (0 is written as 0).",
        ),
        _binary,
        (_lines(3, 5, 0, 8), _lines(1, 1)),
        (_lines(1, 10**18), _lines(2, 2, 3)),
        _gen_count_of(lambda rng: str(rng.randint(0, 10**18)), 6),
    ),
    MiniProblem(
        "distinct_values",
        _statement(
            "Distinct Values",
            "How many different values does the list contain?",
            "The first line contains n (1 <= n <= 100000). The second line contains n integers "
            "(-10^9 <= a_i <= 10^9).",
            "The number of distinct values.",
        ),
        _distinct,
        (_lines(5, "1 2 2 3 1"), _lines(1, "0")),
        (_lines(3, "-1 1 -1"), _lines(4, "9 9 9 9")),
        _gen_list(-10, 10, 30),
    ),
    MiniProblem(
        "majority",
        _statement(
            "Majority Vote",
            "A value is the majority if it occurs more than n/2 times. Print it, or -1 if there "
            "is none.",
            "The first line contains n (1 <= n <= 100000). The second line contains n integers "
            "(0 <= a_i <= 10^9).",
            "The majority value or -1.",
        ),
        _majority,
        (_lines(5, "2 1 2 3 2"), _lines(4, "1 1 2 2")),
        (_lines(1, "1000000000"), _lines(3, "0 0 1")),
        _gen_majority,
    ),
    MiniProblem(
        "transpose",
        _statement(
            "Flip the Table",
            "Print the transpose of an r by c matrix: row j of the output is column j of the "
            "input.",
            "The first line contains r and c (1 <= r, c <= 100). Each of the next r lines "
            "contains c integers.",
            "c lines with r integers each, separated by spaces.",
        ),
        _transpose,
        (_lines("2 3", "1 2 3", "4 5 6"), _lines("1 1", "7")),
        (_lines("1 3", "1 2 3"), _lines("3 1", "1", "2", "3")),
        _gen_matrix,
    ),
    MiniProblem(
        "rotate",
        _statement(
            "Rotate Right",
            "Rotate an array to the right by k positions: each element moves k places to the "
            "right, and elements that fall off the end come back at the front.",
            "The first line contains n and k (1 <= n <= 100000, 0 <= k <= 10^9). The second line "
            "contains n integers.",
            "The rotated array on one line.",
        ),
        _rotate,
        (_lines("5 2", "1 2 3 4 5"), _lines("3 3", "7 8 9")),
        (_lines("1 1000000000", "4"), _lines("4 5", "1 2 3 4")),
        _gen_rotate,
    ),
    MiniProblem(
        "longest_run",
        _statement(
            "Longest Streak",
            "Find the length of the longest block of consecutive equal elements.",
            "The first line contains n (1 <= n <= 100000). The second line contains n integers.",
            "The length of the longest block.",
        ),
        _longest_run,
        (_lines(7, "1 1 2 2 2 1 3"), _lines(3, "4 5 6")),
        (_lines(1, "9"), _lines(4, "2 2 2 2")),
        _gen_runs,
    ),
    MiniProblem(
        "caesar",
        _statement(
            "Shift Cipher",
            "Encrypt a lowercase word by shifting every letter k places forward in the alphabet, "
            "wrapping around from z to a.",
            "The first line contains k (0 <= k <= 1000). The second line contains a word of 1 to "
            "1000 lowercase letters.",
            "The encrypted word.",
        ),
        _caesar,
        (_lines(3, "abcxyz"), _lines(0, "hello")),
        (_lines(26, "zebra"), _lines(1000, "a")),
        lambda rng: _lines(rng.randint(0, 1000), _words(rng, 1, "abcxyz", 1, 20)),
    ),
    MiniProblem(
        "triangular",
        _statement(
            "Big Triangle",
            "Compute 1 + 2 + ... + n modulo 1000000007.",
            "One integer n (1 <= n <= 10^18).",
            "The sum modulo 1000000007.",
        ),
        _triangular,
        (_lines(4), _lines(100)),
        (_lines(10**18), _lines(1)),
        lambda rng: _lines(rng.randint(1, 10**18)),
    ),
    MiniProblem(
        "fibonacci",
        _statement(
            "Fibonacci Modulo",
            "The Fibonacci numbers are F(0) = 0, F(1) = 1 and F(i) = F(i-1) + F(i-2). Print F(n) "
            "modulo 1000000007.",
            "One integer n (0 <= n <= 100000).",
            "F(n) modulo 1000000007.",
        ),
        _fib,
        (_lines(10), _lines(1)),
        (_lines(0), _lines(100000)),
        lambda rng: _lines(rng.randint(0, 5000)),
    ),
    MiniProblem(
        "kth_smallest",
        _statement(
            "K-th Smallest",
            "Print the k-th smallest element of the list (counting duplicates, k = 1 is the "
            "minimum).",
            "The first line contains n and k (1 <= k <= n <= 100000). The second line contains n "
            "integers.",
            "The k-th smallest element.",
        ),
        _kth,
        (_lines("5 2", "9 1 8 1 7"), _lines("3 3", "-1 -2 -3")),
        (_lines("1 1", "5"), _lines("4 4", "2 2 2 3")),
        _gen_kth,
    ),
    MiniProblem(
        "top_word",
        _statement(
            "Most Common Word",
            "Find the word that occurs most often. If several words are tied, choose the "
            "alphabetically smallest one.",
            "The first line contains n (1 <= n <= 1000). The second line contains n words of "
            "lowercase letters separated by spaces.",
            "The word and how many times it occurs, separated by a space.",
        ),
        _top_word,
        (_lines(5, "b a b c a"), _lines(1, "zoo")),
        (_lines(3, "ab a ab"), _lines(2, "y x")),
        _gen_words_freq,
    ),
    MiniProblem(
        "islands",
        _statement(
            "Islands",
            "A map is a grid of '#' (land) and '.' (water). Land cells that share a side belong "
            "to the same island. Count the islands.",
            "The first line contains r and c (1 <= r, c <= 100). Each of the next r lines "
            "contains c characters.",
            "The number of islands.",
        ),
        _islands,
        (_lines("3 4", "##..", "#..#", "...#"), _lines("2 2", "#.", ".#")),
        (_lines("1 1", "."), _lines("2 3", "###", "###")),
        _gen_grid,
    ),
    MiniProblem(
        "pair_sum",
        _statement(
            "Pair with Sum",
            "Are there two elements at different positions whose sum equals the target?",
            "The first line contains n and the target s (1 <= n <= 100000, |s| <= 10^9). The "
            "second line contains n integers (|a_i| <= 10^9).",
            "YES or NO.",
        ),
        _pair_sum,
        (_lines("4 9", "2 7 11 15"), _lines("3 4", "2 1 5")),
        (_lines("1 2", "1"), _lines("2 4", "2 2")),
        _gen_pair,
    ),
    MiniProblem(
        "coins",
        _statement(
            "Making Change",
            "With coins of 1, 5, 10 and 25 cents, what is the smallest number of coins that "
            "make up each amount?",
            "The first line contains t (1 <= t <= 100). Each of the next t lines contains an "
            "amount (0 <= a <= 10^9).",
            "For each amount the smallest number of coins.",
        ),
        _coins,
        (_lines(2, 30, 7), _lines(1, 0)),
        (_lines(1, 10**9), _lines(3, 24, 25, 99)),
        _gen_count_of(lambda rng: str(rng.randint(0, 1000)), 8),
    ),
    MiniProblem(
        "leap_years",
        _statement(
            "Leap Years",
            "A year is a leap year if it is divisible by 4, except years divisible by 100 that "
            "are not divisible by 400. Count the leap years from a to b inclusive.",
            "Two integers a and b (1 <= a <= b <= 10^9).",
            "The number of leap years in [a, b].",
        ),
        _leap,
        (_lines("1996 2004"), _lines("1900 1900")),
        (_lines("1 1000000000"), _lines("2000 2000")),
        lambda rng: _lines(
            " ".join(map(str, sorted([rng.randint(1, 3000), rng.randint(1, 3000)])))
        ),
    ),
    MiniProblem(
        "triangle_kind",
        _statement(
            "Kinds of Triangles",
            "For three side lengths say whether they form a triangle with positive area and, if "
            "so, which kind.",
            "The first line contains t (1 <= t <= 100). Each of the next t lines contains three "
            "integers (1 <= a, b, c <= 10^9).",
            "For each line print invalid, equilateral, isosceles or scalene.",
        ),
        _triangle,
        (_lines(3, "3 4 5", "2 2 2", "1 2 3"), _lines(1, "5 5 8")),
        (_lines(1, "1000000000 1000000000 1"), _lines(2, "1 1 2", "2 3 4")),
        _gen_triangles,
    ),
    MiniProblem(
        "run_length",
        _statement(
            "Run-Length Encoding",
            "Encode a string by replacing each maximal block of equal letters by the letter "
            "followed by the block's length.",
            "One line with a string of 1 to 1000 lowercase letters.",
            "The encoded string.",
        ),
        _rle,
        (_lines("aaabcc"), _lines("z")),
        (_lines("abab"), _lines("b" * 12)),
        _gen_rle,
    ),
    MiniProblem(
        "max_subarray",
        _statement(
            "Best Stretch",
            "Find the largest sum of a non-empty block of consecutive elements.",
            "The first line contains n (1 <= n <= 100000). The second line contains n integers "
            "(|a_i| <= 10^9).",
            "The largest block sum.",
        ),
        _kadane,
        (_lines(5, "-2 3 -1 4 -5"), _lines(3, "-3 -1 -2")),
        (_lines(1, "-1000000000"), _lines(4, "1000000000 1000000000 1000000000 1000000000")),
        _gen_list(-20, 20, 25),
    ),
    MiniProblem(
        "union_segments",
        _statement(
            "Covered Stretches",
            "Segments [l, r] on a line are given. Two segments that overlap or touch belong to "
            "the same stretch. How many separate stretches are there?",
            "The first line contains n (1 <= n <= 100000). Each of the next n lines contains l "
            "and r (0 <= l <= r <= 10^9).",
            "The number of stretches.",
        ),
        _segments,
        (_lines(3, "1 3", "2 5", "7 8"), _lines(2, "0 1", "1 2")),
        (_lines(1, "5 5"), _lines(2, "4 6", "0 3")),
        _gen_segments,
    ),
    MiniProblem(
        "stairs",
        _statement(
            "Climbing Stairs",
            "You climb a staircase of n steps, taking one or two steps at a time. In how many "
            "ways can you reach the top? Print the answer modulo 1000000007.",
            "One integer n (1 <= n <= 100000).",
            "The number of ways modulo 1000000007.",
        ),
        _stairs,
        (_lines(3), _lines(1)),
        (_lines(2), _lines(100000)),
        lambda rng: _lines(rng.randint(1, 5000)),
    ),
)

#: problems of the visible validation split (the rest form the held-out test split)
VALID_NAMES = (
    "sum_of_list",
    "reverse_words",
    "fizzbuzz",
    "digit_sum",
    "brackets",
    "binary",
    "rotate",
    "caesar",
    "kth_smallest",
    "coins",
    "run_length",
    "stairs",
)

SEED = 20241122
N_PRIVATE = 3
N_GENERATED = 5


def _tests(problem: MiniProblem, inputs: list[str]) -> dict[str, list[str]]:
    return {"input": inputs, "output": [problem.solve(i).strip() + "\n" for i in inputs]}


def build_record(problem: MiniProblem, rng: random.Random) -> dict[str, Any]:
    """One problem as a CodeContests-style record, its tests drawn from ``rng``."""
    private = list(problem.edge) + [problem.gen(rng) for _ in range(N_PRIVATE)]
    generated = [problem.gen(rng) for _ in range(N_GENERATED)]
    examples = "".join(
        f"\nExample {i + 1}\n\nInput\n\n{inp}\nOutput\n\n{problem.solve(inp).strip()}\n"
        for i, inp in enumerate(problem.examples)
    )
    return {
        "name": problem.name,
        "description": problem.statement + "\nExamples\n" + examples,
        "public_tests": _tests(problem, list(problem.examples)),
        "private_tests": _tests(problem, private),
        "generated_tests": _tests(problem, generated),
        "difficulty": 7,
        "source": 0,
        "time_limit": {"seconds": 2, "nanos": 0},
        "memory_limit_bytes": 256 * 1024 * 1024,
    }


def build_problems() -> dict[str, list[dict[str, Any]]]:
    """The mini problem set as ``{"valid": [...], "test": [...]}`` (deterministic)."""
    splits: dict[str, list[dict[str, Any]]] = {"valid": [], "test": []}
    for problem in PROBLEMS:
        rng = random.Random(f"{SEED}-{problem.name}")
        record = build_record(problem, rng)
        splits["valid" if problem.name in VALID_NAMES else "test"].append(record)
    return splits
