/*
 * Scalar functions, operators, casts, LIKE, three-valued logic and lazy
 * evaluation, as tables of (expression, expected text). Expressions use
 * the s-expression syntax of exectest.h; "ERR<code>: msg" expects a
 * per-row error (1 division by zero, 2 cast, 3 overflow, 4 bad argument).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include <velo/app.h>

#include "exectest.h"
#include "testutil.h"

static struct velo_funcs *funcs;

#define RUN(table) xrun_cases(funcs, table, sizeof(table) / sizeof(table[0]))

static void test_arithmetic(void)
{
    static const struct xcase cases[] = {
        {"(+ 1 2)", "3"},
        {"(- 1 2)", "-1"},
        {"(* 6 7)", "42"},
        {"(/ 7 2)", "3"},
        {"(/ -7 2)", "-3"},
        {"(% -7 2)", "-1"},
        {"(/ 1 0)", "ERR1: division by zero"},
        {"(% 1 0)", "ERR1"},
        {"(/ 1.0e0 0.0e0)", "ERR1"},
        {"(/ 1.00 0)", "ERR1"},
        {"(+ 2147483647 1)", "ERR3: INTEGER out of range"},
        {"(* 65536 65536)", "ERR3"},
        {"(- -2147483647 2)", "ERR3"},
        {"(+ 2147483647 1L)", "2147483648"},
        {"(+ 9223372036854775807L 1L)", "ERR3: BIGINT out of range"},
        {"(* 3037000500L 3037000500L)", "ERR3"},
        {"(- -9223372036854775807L 2L)", "ERR3"},
        {"(/ -9223372036854775807L -1L)", "9223372036854775807"},
        {"(* 999999999999999999L 10)", "ERR3"},
        {"(- 5)", "-5"},
        {"(- 5.5)", "-5.5"},
        {"(- -2147483648)", "ERR3"},
        {"(+ 1.5e0 2.25e0)", "3.75"},
        {"(+ 0.1e0 0.2e0)", "0.30000000000000004"},
        {"(* 1.0e300 1.0e300)", "ERR3: DOUBLE out of range"},
        {"(% 7.5e0 2.0e0)", "1.5"},
        {"(+ 1.10 2.205)", "3.305"},
        {"(- 1.10 2.205)", "-1.105"},
        {"(* 1.5 2.25)", "3.375"},
        {"(/ 1.00 3)", "0.333333"},
        {"(/ 2.00 3)", "0.666667"},
        {"(/ 10 4.0)", "2.500000"},
        {"(% 7.5 2)", "1.5"},
        {"(* 999999999.99 999999999.99)", "ERR3: numeric overflow"},
        {"(+ 1 2.5)", "3.5"},
        {"(* 2 0.908)", "1.816"},
        {"(+ 1L 0.5e0)", "1.5"},
        {"(MOD 7 3)", "1"},
        {"(MOD -7 3)", "-1"},
        {"(MOD 7 0)", "ERR1"},
        {"(MOD 7.5 2)", "1.5"},
        {"(+ NULL 1)", "NULL"},
        {"(* 2 NULL)", "NULL"},
    };
    RUN(cases);
}

static void test_time_arithmetic(void)
{
    static const struct xcase cases[] = {
        {"(+ TS'2024-01-01T00:00:00Z' IV'1 hour')", "2024-01-01T01:00:00.000Z"},
        {"(+ IV'90 seconds' TS'2024-01-01T00:00:00Z')",
         "2024-01-01T00:01:30.000Z"},
        {"(- TS'2024-01-01T00:00:00Z' IV'1 day')", "2023-12-31T00:00:00.000Z"},
        {"(- TS'2024-01-02T00:00:00Z' TS'2024-01-01T00:00:00Z')",
         "1 day 00:00:00"},
        {"(- TS'2024-01-01T00:00:00Z' TS'2024-01-01T00:00:01.5Z')",
         "-00:00:01.5"},
        {"(+ DATE'2024-02-28' 2)", "2024-03-01"},
        {"(+ 1 DATE'2023-12-31')", "2024-01-01"},
        {"(- DATE'2024-03-01' 1)", "2024-02-29"},
        {"(- DATE'2024-03-01' DATE'2024-01-01')", "60"},
        {"(+ DATE'2024-01-01' IV'12 hours')", "2024-01-01T12:00:00.000Z"},
        {"(* IV'1 minute' 3)", "00:03:00"},
        {"(* IV'1 minute' 1.5e0)", "00:01:30"},
        {"(/ IV'1 hour' 4)", "00:15:00"},
        {"(/ IV'1 hour' 0)", "ERR1"},
        {"(+ IV'1 hour' IV'30 minutes')", "01:30:00"},
        {"(- IV'1 hour')", "-01:00:00"},
    };
    RUN(cases);
}

static void test_comparisons(void)
{
    static const struct xcase cases[] = {
        {"(= 1 1)", "true"},
        {"(<> 1 2)", "true"},
        {"(!= 1 1)", "false"},
        {"(< 1 2L)", "true"},
        {"(>= 2 2)", "true"},
        {"(= 1 1.0)", "true"},
        {"(= 1.10 1.1)", "true"},
        {"(< 1.10 1.2)", "true"},
        {"(> 1.10 1.09)", "true"},
        {"(= 1.5 1.5e0)", "true"},
        {"(= 0.1 0.1e0)", "true"},
        {"(< 0.1 0.2e0)", "true"},
        {"(= 9223372036854775807L 9223372036854775806L)", "false"},
        {"(< 3 2.5e0)", "false"},
        {"(= 'a' 'a')", "true"},
        {"(< 'a' 'b')", "true"},
        {"(< 'B' 'a')", "true"},
        {"(< 'ab' 'abc')", "true"},
        {"(> 'é' 'z')", "true"},
        {"(= 'a' NULL)", "NULL"},
        {"(= NULL NULL)", "NULL"},
        {"(< TS'2024-01-01T00:00:00Z' TS'2024-01-02T00:00:00Z')", "true"},
        {"(= TS'2024-01-01T00:00:00Z' DATE'2024-01-01')", "true"},
        {"(> TS'2024-01-01T10:00:00Z' '2024-01-01T09:00:00Z')", "true"},
        {"(= TRUE FALSE)", "false"},
        {"(< FALSE TRUE)", "true"},
        {"(= J'{\"a\":1}' '{\"a\":1}')", "true"},
        {"(NULLIF 1 1)", "NULL"},
        {"(NULLIF 1 2)", "1"},
        {"(NULLIF NULL 1)", "NULL"},
        {"(NULLIF 1 NULL)", "1"},
        {"(NULLIF 'a' 'a')", "NULL"},
        {"(NULLIF 1.0 1)", "NULL"},
    };
    RUN(cases);
}

static void test_three_valued_logic(void)
{
    /* The full truth tables of AND, OR and NOT over TRUE, FALSE, NULL. */
    static const char *v[3] = {"TRUE", "FALSE", "NULL"};
    static const char *and_t[3][3] = {{"true", "false", "NULL"},
                                      {"false", "false", "false"},
                                      {"NULL", "false", "NULL"}};
    static const char *or_t[3][3] = {{"true", "true", "true"},
                                     {"true", "false", "NULL"},
                                     {"true", "NULL", "NULL"}};
    static const char *not_t[3] = {"false", "true", "NULL"};
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            char e[64], got[64];
            snprintf(e, sizeof(e), "(AND %s %s)", v[i], v[j]);
            xeval_row(funcs, NULL, 0, e, got, sizeof(got));
            CU_ASSERT_STRING_EQUAL(got, and_t[i][j]);
            snprintf(e, sizeof(e), "(OR %s %s)", v[i], v[j]);
            xeval_row(funcs, NULL, 0, e, got, sizeof(got));
            CU_ASSERT_STRING_EQUAL(got, or_t[i][j]);
        }
        char e[64], got[64];
        snprintf(e, sizeof(e), "(NOT %s)", v[i]);
        xeval_row(funcs, NULL, 0, e, got, sizeof(got));
        CU_ASSERT_STRING_EQUAL(got, not_t[i]);
    }
    static const struct xcase cases[] = {
        {"(AND TRUE TRUE NULL)", "NULL"},
        {"(AND NULL TRUE FALSE)", "false"},
        {"(OR FALSE NULL FALSE)", "NULL"},
        {"(OR NULL FALSE TRUE)", "true"},
        {"(ISNULL NULL)", "true"},
        {"(ISNULL 1)", "false"},
        {"(ISNOTNULL 1)", "true"},
        {"(ISNOTNULL (+ 1 NULL))", "false"},
        {"(IN 2 1 2 3)", "true"},
        {"(IN 5 1 2 3)", "false"},
        {"(IN 5 1 NULL)", "NULL"},
        {"(IN 1 1 NULL)", "true"},
        {"(IN NULL 1 2)", "NULL"},
        {"(NOTIN 5 1 2)", "true"},
        {"(NOTIN 5 1 NULL)", "NULL"},
        {"(NOTIN 1 1 2)", "false"},
        {"(IN 2 1.5 2.0)", "true"},
        {"(IN 'k' 'a' 'b' 'c' 'd' 'e' 'f' 'g' 'h' 'i' 'j' 'k')", "true"},
        {"(IN 'z' 'a' 'b' 'c' 'd' 'e' 'f' 'g' 'h' 'i' 'j' 'k')", "false"},
        {"(IN 'z' 'a' 'b' 'c' 'd' 'e' 'f' 'g' 'h' 'i' 'j' NULL)", "NULL"},
        {"(IN 7L 1 2 3 4 5 6 7 8 9 10 11 12)", "true"},
        {"(IN 2.5e0 1.0e0 2.5e0)", "true"},
    };
    RUN(cases);
}

static void test_lazy_evaluation(void)
{
    static const struct xcase cases[] = {
        /* An error in a branch that is not taken does not fire. */
        {"(CASE (= 0 0) 0 (/ 1 0))", "0"},
        {"(CASE (= 1 0) (/ 1 0) 5)", "5"},
        {"(CASE (= 1 0) 1)", "NULL"},
        {"(CASE NULL 1 2)", "2"},
        {"(CASE (= 1 0) 1 (= 1 1) 2 3)", "2"},
        {"(CASE TRUE 1 2.5)", "1.0"},
        {"(COALESCE 1 (/ 1 0))", "1"},
        {"(COALESCE NULL NULL 3)", "3"},
        {"(COALESCE NULL NULL)", "NULL"},
        {"(COALESCE NULL 'x')", "x"},
        {"(AND FALSE (= (/ 1 0) 1))", "false"},
        {"(OR TRUE (= (/ 1 0) 1))", "true"},
        /* ...but a taken branch's error does. */
        {"(CASE (= 0 0) (/ 1 0) 0)", "ERR1"},
        {"(COALESCE NULL (/ 1 0))", "ERR1"},
    };
    RUN(cases);
}

static void test_like(void)
{
    static const struct xcase cases[] = {
        {"(LIKE 'hello' 'h%')", "true"},
        {"(LIKE 'hello' '%llo')", "true"},
        {"(LIKE 'hello' '%ell%')", "true"},
        {"(LIKE 'hello' '%xyz%')", "false"},
        {"(LIKE 'hello' 'h_llo')", "true"},
        {"(LIKE 'hello' 'h_lo')", "false"},
        {"(LIKE 'hello' 'hello')", "true"},
        {"(LIKE 'hello' 'hell')", "false"},
        {"(LIKE 'Hello' 'hello')", "false"},
        {"(ILIKE 'Hello' 'hello')", "true"},
        {"(ILIKE 'HELLO' '%ll%')", "true"},
        {"(ILIKE 'HELLO' 'h_l%')", "true"},
        {"(LIKE 'a%b' 'a\\%b')", "true"},
        {"(LIKE 'axb' 'a\\%b')", "false"},
        {"(LIKE 'a_b' 'a!_b' '!')", "true"},
        {"(LIKE 'axb' 'a!_b' '!')", "false"},
        {"(LIKE 'a\\b' 'a\\b' '')", "true"},
        {"(LIKE 'ab' 'a!' '!')", "ERR4: LIKE pattern must not end"},
        {"(LIKE 'ab' 'ab' 'xy')", "ERR4: invalid escape"},
        {"(LIKE 'héllo' 'h_llo')", "true"},
        {"(LIKE 'héllo' 'h__llo')", "false"},
        {"(LIKE '' '%')", "true"},
        {"(LIKE '' '_')", "false"},
        {"(LIKE 'abcabc' '%a%c')", "true"},
        {"(LIKE 'mississippi' '%iss%pi')", "true"},
        {"(LIKE 'mississippi' 'm%s%s%i%z')", "false"},
        {"(LIKE 'abc' '%%%')", "true"},
        {"(LIKE NULL 'a')", "NULL"},
        {"(LIKE 'a' NULL)", "NULL"},
        {"(NOT (LIKE 'abc' 'a%'))", "false"},
    };
    RUN(cases);
}

static void test_strings(void)
{
    static const struct xcase cases[] = {
        {"(UPPER 'abc')", "ABC"},
        {"(UPPER 'héllo wörld')", "HÉLLO WÖRLD"},
        {"(LOWER 'ÀB Ça')", "àb ça"},
        {"(UPPER 'straße')", "STRAßE"},
        {"(LOWER 'ΑΒΓ')", "αβγ"},
        {"(UPPER 'Σίσυφος')", "ΣΊΣΥΦΟΣ"},
        {"(LOWER 'ΆΈΏ')", "άέώ"},
        {"(UPPER 'ĳ ł ž')", "Ĳ Ł Ž"},
        {"(UPPER 'привет')", "ПРИВЕТ"},
        {"(UPPER NULL)", "NULL"},
        {"(LOWER '')", ""},
        {"(LENGTH 'héllo')", "5"},
        {"(LENGTH '')", "0"},
        {"(LENGTH '日本語')", "3"},
        {"(CHAR_LENGTH 'ab')", "2"},
        {"(OCTET_LENGTH 'héllo')", "6"},
        {"(LENGTH NULL)", "NULL"},
        {"(SUBSTRING 'hello' 2 3)", "ell"},
        {"(SUBSTRING 'hello' 0 3)", "he"},
        {"(SUBSTRING 'hello' -1 3)", "h"},
        {"(SUBSTRING 'hello' 3)", "llo"},
        {"(SUBSTRING 'hello' 10)", ""},
        {"(SUBSTRING 'hello' 2 0)", ""},
        {"(SUBSTRING 'héllo' 2 2)", "él"},
        {"(SUBSTRING 'hello' 2 -1)", "ERR4: negative substring length"},
        {"(SUBSTRING NULL 1)", "NULL"},
        {"(SUBSTR 'hello' 2 2)", "el"},
        {"(TRIM '  hi  ')", "hi"},
        {"(LTRIM '  hi ')", "hi "},
        {"(RTRIM ' hi  ')", " hi"},
        {"(TRIM 'xxhixx' 'x')", "hi"},
        {"(LTRIM 'xyhixy' 'yx')", "hixy"},
        {"(TRIM 'éhié' 'é')", "hi"},
        {"(TRIM '')", ""},
        {"(TRIM '   ')", ""},
        {"(LPAD 'hi' 5)", "   hi"},
        {"(LPAD 'hi' 5 'ab')", "abahi"},
        {"(RPAD 'hi' 5 'ab')", "hiaba"},
        {"(LPAD 'hello' 3)", "hel"},
        {"(RPAD 'hé' 4 'ü')", "héüü"},
        {"(LPAD 'hi' 5 '')", "hi"},
        {"(LPAD 'hi' -1)", ""},
        {"(LPAD 'hi' 100000000L)", "ERR4: requested length"},
        {"(REPLACE 'aaa' 'a' 'bb')", "bbbbbb"},
        {"(REPLACE 'abc' '' 'x')", "abc"},
        {"(REPLACE 'abcabc' 'bc' '')", "aa"},
        {"(REPLACE 'abc' 'z' 'y')", "abc"},
        {"(CONCAT 'a' NULL 'b')", "ab"},
        {"(CONCAT 'x' 1 2.5 TRUE)", "x12.5true"},
        {"(CONCAT NULL)", ""},
        {"(CONCAT 'only')", "only"},
        {"(|| 'a' 'b')", "ab"},
        {"(|| 'a' NULL)", "NULL"},
        {"(|| 'n=' 5)", "n=5"},
        {"(|| (|| 'a' 'b') 'c')", "abc"},
        {"(SPLIT_PART 'a,b,c' ',' 2)", "b"},
        {"(SPLIT_PART 'a,b,c' ',' 4)", ""},
        {"(SPLIT_PART 'a,b,c' ',' -1)", "c"},
        {"(SPLIT_PART 'a,b,c' ',' -3)", "a"},
        {"(SPLIT_PART 'a,b,c' ',' 0)", "ERR4: field position"},
        {"(SPLIT_PART 'a::b' '::' 2)", "b"},
        {"(SPLIT_PART 'abc' '' 1)", "abc"},
        {"(SPLIT_PART '' ',' 1)", ""},
        {"(POSITION 'lo' 'hello')", "4"},
        {"(POSITION 'z' 'hello')", "0"},
        {"(POSITION '' 'x')", "1"},
        {"(POSITION 'l' 'héllo')", "3"},
        {"(STRPOS 'hello' 'll')", "3"},
        {"(LEFT 'hello' 2)", "he"},
        {"(LEFT 'hello' -2)", "hel"},
        {"(LEFT 'hé' 5)", "hé"},
        {"(RIGHT 'hello' 2)", "lo"},
        {"(RIGHT 'hello' -2)", "llo"},
        {"(RIGHT 'héllo' 4)", "éllo"},
        {"(RIGHT 'hi' 0)", ""},
    };
    RUN(cases);
}

static void test_regex(void)
{
    static const struct xcase cases[] = {
        {"(REGEXP_EXTRACT 'order-123-x' '[0-9]+')", "123"},
        {"(REGEXP_EXTRACT 'k=v' '([a-z])=([a-z])' 2)", "v"},
        {"(REGEXP_EXTRACT 'k=v' '([a-z])=([a-z])' 0)", "k=v"},
        {"(REGEXP_EXTRACT 'abc' '[0-9]+')", "NULL"},
        {"(REGEXP_EXTRACT 'abc' '(x)?b' 1)", "NULL"},
        {"(REGEXP_EXTRACT 'abc' '(')", "ERR4: invalid regular expression"},
        {"(REGEXP_EXTRACT 'abc' 'b' 3)", "ERR4: group 3 is out of range"},
        {"(REGEXP_EXTRACT 'a1b2' '[[:digit:]]' )", "1"},
        {"(REGEXP_REPLACE 'a1b22c' '[0-9]+' '#')", "a#b#c"},
        {"(REGEXP_REPLACE 'john smith' '([a-z]+) ([a-z]+)' '\\2, \\1')",
         "smith, john"},
        {"(REGEXP_REPLACE 'aaa' '^a' 'b')", "baa"},
        {"(REGEXP_REPLACE 'abc' 'x*' '-')", "-a-b-c-"},
        {"(REGEXP_REPLACE 'abc' 'z' '-')", "abc"},
        {"(REGEXP_REPLACE 'a.b' '\\.' '\\\\')", "a\\b"},
        {"(REGEXP_REPLACE 'abc' '[' 'x')", "ERR4"},
        {"(REGEXP_LIKE 'abc' '^a.c$')", "true"},
        {"(REGEXP_LIKE 'abcd' '^a.c$')", "false"},
        {"(REGEXP_LIKE 'héllo' '^h.llo$')", "true"},
        {"(REGEXP_LIKE NULL 'a')", "NULL"},
    };
    RUN(cases);
}

static void test_math(void)
{
    static const struct xcase cases[] = {
        {"(ABS -5)", "5"},
        {"(ABS -5L)", "5"},
        {"(ABS -2147483648)", "ERR3"},
        {"(ABS -1.5)", "1.5"},
        {"(ABS -2.5e0)", "2.5"},
        {"(ABS NULL)", "NULL"},
        /* DECIMAL and integers round HALF_EVEN, DOUBLE half away. */
        {"(ROUND 2.5)", "2"},
        {"(ROUND 3.5)", "4"},
        {"(ROUND -2.5)", "-2"},
        {"(ROUND 2.51)", "3"},
        {"(ROUND 2.5e0)", "3"},
        {"(ROUND -2.5e0)", "-3"},
        {"(ROUND 1.2345 2)", "1.2300"},
        {"(ROUND 1.235 2)", "1.240"},
        {"(ROUND 1.245 2)", "1.240"},
        {"(ROUND 9.95 1)", "10.00"},
        {"(ROUND 1234 -2)", "1200"},
        {"(ROUND 1250 -2)", "1200"},
        {"(ROUND 1350 -2)", "1400"},
        {"(ROUND 7 2)", "7"},
        {"(ROUND 3.14159e0 2)", "3.14"},
        {"(ROUND 1234.5e0 -2)", "1200"},
        {"(FLOOR -1.5)", "-2"},
        {"(CEIL -1.5)", "-1"},
        {"(CEILING 1.01)", "2"},
        {"(FLOOR 1.5e0)", "1"},
        {"(CEIL 1.2e0)", "2"},
        {"(CEIL 7)", "7"},
        {"(SQRT 16)", "4"},
        {"(SQRT 2.25)", "1.5"},
        {"(SQRT -1)", "ERR4: cannot take the square root"},
        {"(POWER 2 10)", "1024"},
        {"(POW 2.0 0.5e0)", "1.4142135623730951"},
        {"(POWER 0 -1)", "ERR4"},
        {"(POWER -8 0.5e0)", "ERR4"},
        {"(POWER -2 3)", "-8"},
        {"(POWER 10 400)", "ERR3"},
        {"(LN 1)", "0"},
        {"(LN 0)", "ERR4: cannot take the logarithm of zero"},
        {"(LN -1)", "ERR4"},
        {"(LOG10 1000)", "3"},
        {"(EXP 0)", "1"},
        {"(EXP 1000)", "ERR3"},
        {"(SIGN -3.5e0)", "-1"},
        {"(GREATEST 1 5 3)", "5"},
        {"(GREATEST 1 NULL 3)", "3"},
        {"(LEAST 'b' 'a' 'c')", "a"},
        {"(LEAST 4 2L)", "2"},
        {"(GREATEST 1 2.5)", "2.5"},
        {"(GREATEST NULL NULL)", "NULL"},
        {"(LEAST TS'2024-01-02T00:00:00Z' TS'2024-01-01T00:00:00Z')",
         "2024-01-01T00:00:00.000Z"},
    };
    RUN(cases);
}

static void test_time(void)
{
    static const struct xcase cases[] = {
        {"(EXTRACT 'YEAR' TS'2024-03-15T10:20:30.456Z')", "2024"},
        {"(EXTRACT 'month' TS'2024-03-15T10:20:30.456Z')", "3"},
        {"(EXTRACT 'Day' TS'2024-03-15T10:20:30.456Z')", "15"},
        {"(EXTRACT 'hour' TS'2024-03-15T10:20:30.456Z')", "10"},
        {"(EXTRACT 'minute' TS'2024-03-15T10:20:30.456Z')", "20"},
        {"(EXTRACT 'second' TS'2024-03-15T10:20:30.456Z')", "30"},
        {"(EXTRACT 'millisecond' TS'2024-03-15T10:20:30.456Z')", "456"},
        {"(EXTRACT 'dow' TS'2024-03-15T10:20:30.456Z')", "5"},
        {"(EXTRACT 'dow' TS'2024-03-17T00:00:00Z')", "0"},
        {"(EXTRACT 'isodow' TS'2024-03-17T00:00:00Z')", "7"},
        {"(EXTRACT 'doy' TS'2024-03-15T10:20:30.456Z')", "75"},
        {"(EXTRACT 'doy' TS'2023-12-31T00:00:00Z')", "365"},
        {"(EXTRACT 'quarter' TS'2024-08-01T00:00:00Z')", "3"},
        {"(EXTRACT 'week' TS'2024-01-01T00:00:00Z')", "1"},
        {"(EXTRACT 'week' TS'2021-01-03T00:00:00Z')", "53"},
        {"(EXTRACT 'epoch' TS'1970-01-02T00:00:00Z')", "86400"},
        {"(EXTRACT 'epoch' TS'1969-12-31T23:59:59.5Z')", "-1"},
        {"(EXTRACT 'hour' TS'1969-12-31T23:00:00Z')", "23"},
        {"(EXTRACT 'year' DATE'2020-02-29')", "2020"},
        {"(EXTRACT 'epoch' IV'1 hour')", "3600"},
        {"(EXTRACT 'minute' IV'90 minutes')", "30"},
        {"(EXTRACT 'bogus' TS'2024-01-01T00:00:00Z')", "ERR4: unknown unit"},
        {"(EXTRACT 'year' NULL)", "NULL"},
        {"(YEAR TS'1999-12-31T23:59:59Z')", "1999"},
        {"(HOUR TS'2024-01-01T05:00:00Z')", "5"},
        {"(DATE_TRUNC 'hour' TS'2024-03-15T10:20:30.456Z')",
         "2024-03-15T10:00:00.000Z"},
        {"(DATE_TRUNC 'minute' TS'2024-03-15T10:20:30.456Z')",
         "2024-03-15T10:20:00.000Z"},
        {"(DATE_TRUNC 'second' TS'2024-03-15T10:20:30.456Z')",
         "2024-03-15T10:20:30.000Z"},
        {"(DATE_TRUNC 'day' TS'2024-03-15T10:20:30.456Z')",
         "2024-03-15T00:00:00.000Z"},
        {"(DATE_TRUNC 'week' TS'2024-03-15T10:20:30.456Z')",
         "2024-03-11T00:00:00.000Z"},
        {"(DATE_TRUNC 'month' TS'2024-03-15T10:20:30.456Z')",
         "2024-03-01T00:00:00.000Z"},
        {"(DATE_TRUNC 'quarter' TS'2024-05-15T10:20:30.456Z')",
         "2024-04-01T00:00:00.000Z"},
        {"(DATE_TRUNC 'YEAR' TS'2024-03-15T10:20:30.456Z')",
         "2024-01-01T00:00:00.000Z"},
        {"(DATE_TRUNC 'day' TS'1969-12-31T23:00:00Z')",
         "1969-12-31T00:00:00.000Z"},
        {"(DATE_TRUNC 'dow' TS'2024-03-15T10:20:30.456Z')",
         "ERR4: unknown unit"},
        {"(DATE_FORMAT TS'2024-03-05T07:08:09.123Z' '%Y/%m/%d %H:%M:%S.%L')",
         "2024/03/05 07:08:09.123"},
        {"(DATE_FORMAT TS'2024-03-05T07:08:09.123456Z' '%a %b %e %j %f')",
         "Tue Mar  5 065 123456"},
        {"(DATE_FORMAT TS'2024-03-05T15:08:09Z' '%I%p %F %T %%')",
         "03PM 2024-03-05 15:08:09 %"},
        {"(DATE_FORMAT TS'2024-03-05T15:08:09Z' 'no specifiers')",
         "no specifiers"},
        {"(FROM_UNIXTIME 86400)", "1970-01-02T00:00:00.000Z"},
        {"(FROM_UNIXTIME 1.5e0)", "1970-01-01T00:00:01.500Z"},
        {"(FROM_UNIXTIME 9223372036854775807L)", "ERR3"},
        {"(UNIX_TIMESTAMP TS'1970-01-02T00:00:00Z')", "86400"},
        {"(UNIX_TIMESTAMP)", "1700000000"},
        {"(NOW)", "2023-11-14T22:13:20.123Z"},
        {"(CURRENT_TIMESTAMP)", "2023-11-14T22:13:20.123Z"},
        {"(CURRENT_DATE)", "2023-11-14"},
        {"(TUMBLE_START TS'2024-01-01T00:00:07Z' IV'5 seconds')",
         "2024-01-01T00:00:05.000Z"},
        {"(TUMBLE_END TS'2024-01-01T00:00:07Z' IV'5 seconds')",
         "2024-01-01T00:00:10.000Z"},
        {"(TUMBLE_START TS'1969-12-31T23:59:59Z' IV'1 minute')",
         "1969-12-31T23:59:00.000Z"},
        {"(TUMBLE_START TS'2024-01-01T00:00:07Z' IV'0 seconds')", "ERR4"},
    };
    RUN(cases);
}

static void test_json(void)
{
    static const struct xcase cases[] = {
        {"(JSON_VALUE '{\"a\":{\"b\":[10,20]}}' '$.a.b[1]')", "20"},
        {"(JSON_VALUE '{\"a\":\"x\\ny\"}' '$.a')", "x\ny"},
        {"(JSON_VALUE '{\"a\":\"\\u00e9\\ud83d\\ude00\"}' '$.a')",
         "\xc3\xa9\xf0\x9f\x98\x80"},
        {"(JSON_VALUE '{\"a\":{\"b\":1}}' '$.a')", "NULL"},
        {"(JSON_VALUE '{\"a\":1}' '$.z')", "NULL"},
        {"(JSON_VALUE '{\"a\":null}' '$.a')", "NULL"},
        {"(JSON_VALUE '{\"a\":true}' '$.a')", "true"},
        {"(JSON_VALUE '{\"a b\":1}' '$[\"a b\"]')", "1"},
        {"(JSON_VALUE '{\"a\":[{\"c\":5}]}' '$.a[0].c')", "5"},
        {"(JSON_VALUE '{\"a\":[1]}' '$.a[3]')", "NULL"},
        {"(JSON_VALUE '[1,[2,3]]' '$[1][0]')", "2"},
        {"(JSON_VALUE '{\"x\\\"y\":7}' '$[''x\"y'']')", "7"},
        {"(JSON_VALUE 'not json' '$.a')", "ERR4: value is not valid JSON"},
        {"(JSON_VALUE '{\"a\":1}' 'a..b')", "ERR4: bad JSON path"},
        {"(JSON_OBJECT 'a' 1 'b' 'x\"y' 'c' TRUE 'd' NULL 'e' 2.5)",
         "{\"a\":1,\"b\":\"x\\\"y\",\"c\":true,\"d\":null,\"e\":2.5}"},
        {"(JSON_OBJECT 'k' J'{\"n\":[1]}')", "{\"k\":{\"n\":[1]}}"},
        {"(JSON_OBJECT 't' 'a\tb')", "{\"t\":\"a\\u0009b\"}"},
        {"(JSON_OBJECT 'a' 1 'b')", "ERR4: JSON_OBJECT takes name, value"},
        {"(JSON_OBJECT NULL 1)", "ERR4: JSON_OBJECT: a name is NULL"},
        {"(JSON_VALUE (JSON_OBJECT 'q' 'x\"y') '$.q')", "x\"y"},
        {"(JSON_EXTRACT '{\"a\":{\"b\":1}}' '$.a')", "{\"b\":1}"},
        {"(JSON_EXTRACT '{\"a\": [1, 2] }' '$.a')", "[1, 2]"},
        {"(JSON_EXTRACT '{\"a\":\"s\"}' '$.a')", "\"s\""},
        {"(JSON_EXTRACT J'{\"a\":1}' '$')", "{\"a\":1}"},
        {"(FIELD:STRING J'{\"user\":{\"name\":\"bo\"}}' 'user' 'name')", "bo"},
        {"(FIELD:BIGINT J'{\"a\":{\"n\":42}}' 'a' 'n')", "42"},
        {"(FIELD:DOUBLE J'{\"a\":2.5}' 'a')", "2.5"},
        {"(FIELD:DECIMAL(10,2) J'{\"a\":\"2.505\"}' 'a')", "2.50"},
        {"(FIELD:BIGINT J'{\"a\":\"x\"}' 'a')",
         "ERR2: cannot cast 'x' to BIGINT"},
        {"(FIELD J'{\"a\":[1,2]}' 'a')", "[1,2]"},
        {"(FIELD:STRING J'{\"a\":[1,2]}' 'a' '1')", "2"},
        {"(FIELD:STRING J'{\"a\":1}' 'b')", "NULL"},
        {"(FIELD:STRING J'{\"a\":1}' 'a' 'b')", "NULL"},
        {"(FIELD:STRING J'{\"0\":\"zero\"}' '0')", "zero"},
        {"(FIELD:STRING '{\"a\":' 'a')", "ERR4"},
    };
    RUN(cases);
}

static void test_casts(void)
{
    static const struct xcase cases[] = {
        {"(CAST 'abc' BIGINT)", "ERR2: cannot cast 'abc' to BIGINT"},
        {"(CAST ' 42 ' BIGINT)", "42"},
        {"(CAST '-7' INTEGER)", "-7"},
        {"(CAST '1.5' BIGINT)", "ERR2"},
        {"(CAST '' BIGINT)", "ERR2"},
        {"(CAST '99999999999999999999' BIGINT)", "ERR3: value"},
        {"(CAST '3000000000' INTEGER)", "ERR3"},
        {"(CAST 3000000000L INTEGER)",
         "ERR3: value 3000000000 is out of range"},
        {"(CAST 2.5 INTEGER)", "2"},
        {"(CAST 3.5 INTEGER)", "4"},
        {"(CAST -2.5 BIGINT)", "-2"},
        {"(CAST 2.5e0 BIGINT)", "2"},
        {"(CAST 3.5e0 BIGINT)", "4"},
        {"(CAST -2.5e0 BIGINT)", "-2"},
        {"(CAST 1.5e300 BIGINT)", "ERR3"},
        {"(CAST 1.005e0 DECIMAL(10,2))", "1.00"},
        {"(CAST 2.675e0 DECIMAL(10,2))", "2.68"},
        {"(CAST 0.1e0 DECIMAL(5,3))", "0.100"},
        {"(CAST 1.0e20 DECIMAL(18,0))", "ERR3"},
        {"(CAST 12.345 DECIMAL(4,1))", "12.3"},
        {"(CAST 123.45 DECIMAL(3,1))", "ERR3"},
        {"(CAST 1.25 DECIMAL(2,1))", "1.2"},
        {"(CAST 1.35 DECIMAL(2,1))", "1.4"},
        {"(CAST 7 DECIMAL(5,2))", "7.00"},
        {"(CAST 123456 DECIMAL(5,2))", "ERR3"},
        {"(CAST '12.345' DECIMAL(10,2))", "12.34"},
        {"(CAST 'x1' DECIMAL(10,2))", "ERR2"},
        {"(CAST 'true' BOOLEAN)", "true"},
        {"(CAST 'no' BOOLEAN)", "false"},
        {"(CAST 'OFF' BOOLEAN)", "false"},
        {"(CAST 'maybe' BOOLEAN)", "ERR2: cannot cast 'maybe' to BOOLEAN"},
        {"(CAST 1 BOOLEAN)", "true"},
        {"(CAST 0.0e0 BOOLEAN)", "false"},
        {"(CAST TRUE INTEGER)", "1"},
        {"(CAST FALSE DECIMAL(3,1))", "0.0"},
        {"(CAST TRUE STRING)", "true"},
        {"(CAST 12.50 STRING)", "12.50"},
        {"(CAST 1.5e0 STRING)", "1.5"},
        {"(CAST -17L VARCHAR)", "-17"},
        {"(CAST 7 DOUBLE)", "7"},
        {"(CAST 0.125 DOUBLE)", "0.125"},
        {"(CAST 1.5e0 DECIMAL(5,2))", "1.50"},
        {"(CAST '1e3' DOUBLE)", "1000"},
        {"(CAST 'NaN' DOUBLE)", "NaN"},
        {"(CAST '0x10' DOUBLE)", "ERR2"},
        {"(CAST '2024-01-01T10:00:00Z' TIMESTAMP)", "2024-01-01T10:00:00.000Z"},
        {"(CAST 'garbage' TIMESTAMP)",
         "ERR2: cannot cast 'garbage' to TIMESTAMP"},
        {"(CAST '2024-02-29' DATE)", "2024-02-29"},
        {"(CAST TS'2024-01-01T10:00:00Z' DATE)", "2024-01-01"},
        {"(CAST TS'1969-12-31T10:00:00Z' DATE)", "1969-12-31"},
        {"(CAST DATE'2024-01-01' TIMESTAMP)", "2024-01-01T00:00:00.000Z"},
        {"(CAST DATE'2024-01-01' STRING)", "2024-01-01"},
        {"(CAST 86400000L TIMESTAMP)", "1970-01-02T00:00:00.000Z"},
        {"(CAST TS'1970-01-02T00:00:00Z' BIGINT)", "86400000"},
        {"(CAST '90 seconds' INTERVAL)", "00:01:30"},
        {"(CAST '1 hour 30 minutes' INTERVAL)", "01:30:00"},
        {"(CAST '1.5h' INTERVAL)", "01:30:00"},
        {"(CAST '5m' INTERVAL)", "00:05:00"},
        {"(CAST '01:02:03.5' INTERVAL)", "01:02:03.5"},
        {"(CAST '2 days' INTERVAL)", "2 days 00:00:00"},
        {"(CAST '30' INTERVAL)", "00:00:30"},
        {"(CAST 'xyz' INTERVAL)", "ERR2"},
        {"(CAST '5 parsecs' INTERVAL)", "ERR2"},
        {"(CAST IV'1 day' BIGINT)", "86400000"},
        {"(CAST 1500L INTERVAL)", "00:00:01.5"},
        {"(CAST IV'1 minute' STRING)", "00:01:00"},
        {"(CAST '{\"a\":1}' JSON)", "{\"a\":1}"},
        {"(CAST ' [1, {\"b\": null}] ' JSON)", " [1, {\"b\": null}] "},
        {"(CAST '{bad' JSON)", "ERR2"},
        {"(CAST '{\"a\":01}' JSON)", "ERR2"},
        {"(CAST 'x' JSON)", "ERR2"},
        {"(CAST J'{\"a\":1}' STRING)", "{\"a\":1}"},
        {"(CAST J'42' BIGINT)", "42"},
        {"(CAST J'\"7\"' BIGINT)", "7"},
        {"(CAST J'true' BOOLEAN)", "true"},
        {"(CAST J'null' BIGINT)", "NULL"},
        {"(CAST J'[1]' BIGINT)", "ERR2"},
        {"(CAST 1.5e0 JSON)", "1.5"},
        {"(CAST 12.30 JSON)", "12.30"},
        {"(CAST 'he\"y' JSON)", "ERR2"},
        {"(CAST 'str' BYTES)", "str"},
        {"(CAST NULL BIGINT)", "NULL"},
        {"(CAST NULL STRING)", "NULL"},
        {"(TRYCAST 'abc' BIGINT)", "NULL"},
        {"(TRYCAST '5' BIGINT)", "5"},
        {"(TRYCAST 3000000000L INTEGER)", "NULL"},
    };
    RUN(cases);
}

/* Every implemented cast pair is allowed; the rest are refused at compile
 * time, never at run time. */
static void test_cast_matrix(void)
{
    static const int ids[] = {
        VELO_TYPE_BOOLEAN, VELO_TYPE_INTEGER,   VELO_TYPE_BIGINT,
        VELO_TYPE_DOUBLE,  VELO_TYPE_DECIMAL,   VELO_TYPE_STRING,
        VELO_TYPE_TIMESTAMP, VELO_TYPE_DATE,    VELO_TYPE_INTERVAL,
        VELO_TYPE_BYTES,   VELO_TYPE_JSON};
    /* rows: from; columns: to (same order). 1 = allowed. */
    static const int allowed[11][11] = {
        /* BOOL */ {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1},
        /* INT  */ {1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1},
        /* BIG  */ {1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1},
        /* DBL  */ {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1},
        /* DEC  */ {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1},
        /* STR  */ {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        /* TS   */ {0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1},
        /* DATE */ {0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1},
        /* IVL  */ {0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1},
        /* BYTES*/ {0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1},
        /* JSON */ {1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1},
    };
    for (int i = 0; i < 11; i++) {
        for (int j = 0; j < 11; j++) {
            struct velo_datatype f = velo_type_of(ids[i]);
            struct velo_datatype t = velo_type_of(ids[j]);
            int got = velo_cast_supported(f, t);
            if (got != allowed[i][j]) {
                char a[32], b[32];
                fprintf(stderr, "  cast %s -> %s: %d\n",
                        velo_type_name(f, a, sizeof(a)),
                        velo_type_name(t, b, sizeof(b)), got);
            }
            CU_ASSERT_EQUAL(got, allowed[i][j]);
        }
    }
}

/* Kernels over columns: NULLs, a selection, errors on some rows only, and
 * a non-constant LIKE/regex pattern. */
static void test_columns_and_selection(void)
{
    struct velo_schema *s = xschema("a:BIGINT;b:BIGINT;p:STRING;t:STRING");
    struct velo_batch *b = velo_batch_create(s, 8);
    int64_t av[] = {10, 0, 30, 7, 8};
    int64_t bv[] = {2, 5, 0, 0, 4};
    const char *pv[] = {"a%", "%z", "[", "b.", "x"};
    const char *tv[] = {"abc", "xyz", "q", "bb", "x"};
    for (size_t r = 0; r < 5; r++) {
        xset_i64(b, 0, r, av[r]);
        xset_i64(b, 1, r, bv[r]);
        xset_str(b, 2, r, pv[r]);
        xset_str(b, 3, r, tv[r]);
    }
    xset_null(b, 0, 1);
    b->nrows = 5;

    struct velo_expr *e = xparse(funcs, s, "(/ $0 $1)");
    struct velo_evaluator *ev = velo_expr_compile(e, s, 8);
    struct velo_eval_ctx ctx;
    velo_eval_ctx_init(&ctx, 8, 1);
    struct velo_arena *arena = velo_arena_create(1024);
    ctx.arena = arena;
    const struct velo_column *c = velo_evaluate(ev, &ctx, b);
    CU_ASSERT_EQUAL(c->v.i64[0], 5);
    CU_ASSERT(c->has_nulls && c->nulls[1]);
    CU_ASSERT_EQUAL(ctx.row_error[1], 0); /* NULL / 5 is NULL, no error */
    CU_ASSERT_EQUAL(ctx.row_error[2], VELO_EVAL_DIV_ZERO);
    CU_ASSERT_EQUAL(ctx.row_error[3], VELO_EVAL_DIV_ZERO);
    CU_ASSERT_EQUAL(c->v.i64[4], 2);
    CU_ASSERT_EQUAL(ctx.n_errors, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(ctx.first_msg, "division by zero"));
    CU_ASSERT_PTR_NOT_NULL(strstr(ctx.first_msg, "in (/ $0 $1)"));
    velo_eval_ctx_clear(&ctx, 8);

    /* With a selection that skips the failing rows: no error at all. */
    uint16_t sel[] = {0, 4};
    b->sel = sel;
    b->nsel = 2;
    c = velo_evaluate(ev, &ctx, b);
    CU_ASSERT_EQUAL(ctx.n_errors, 0);
    CU_ASSERT_EQUAL(c->v.i64[0], 5);
    CU_ASSERT_EQUAL(c->v.i64[4], 2);
    b->sel = NULL;
    velo_evaluator_destroy(ev);
    velo_expr_free(e);

    /* CASE guards the division row by row. */
    char got[64];
    for (size_t r = 0; r < 5; r++) {
        xeval_row(funcs, b, r, "(CASE (= $1 0) -1L (/ $0 $1))", got,
                  sizeof(got));
        const char *want[] = {"5", "NULL", "-1", "-1", "2"};
        CU_ASSERT_STRING_EQUAL(got, want[r]);
    }
    /* A pattern column: compiled per distinct value; a bad one fails
     * only its own row. */
    const char *like_want[] = {"true", "true", "false", "false", "true"};
    const char *re_want[] = {"false", "false", "ERR4", "true", "true"};
    for (size_t r = 0; r < 5; r++) {
        xeval_row(funcs, b, r, "(LIKE $3 $2)", got, sizeof(got));
        CU_ASSERT_STRING_EQUAL(got, like_want[r]);
        xeval_row(funcs, b, r, "(REGEXP_LIKE $3 $2)", got, sizeof(got));
        CU_ASSERT_EQUAL(strncmp(got, re_want[r], strlen(re_want[r])), 0);
    }
    velo_eval_ctx_free(&ctx);
    velo_arena_destroy(arena);
    velo_batch_destroy(b);
    velo_schema_destroy(s);
}

static void test_resolution(void)
{
    struct velo_datatype a[2], cast[2];
    int known;
    a[0] = velo_type_of(VELO_TYPE_INTEGER);
    a[1] = velo_type_of(VELO_TYPE_BIGINT);
    const struct velo_func *f =
        velo_funcs_resolve(funcs, "+", a, 2, cast, &known);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(f->ret.id, VELO_TYPE_BIGINT);
    CU_ASSERT_EQUAL(cast[0].id, VELO_TYPE_BIGINT);
    CU_ASSERT_EQUAL(cast[1].id, 0);
    /* BIGINT * DECIMAL(3,3) -> DECIMAL with BIGINT widened to (18,0). */
    a[0] = velo_type_of(VELO_TYPE_BIGINT);
    a[1] = velo_type_decimal(3, 3);
    f = velo_funcs_resolve(funcs, "*", a, 2, cast, &known);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(cast[0].id, VELO_TYPE_DECIMAL);
    CU_ASSERT_EQUAL(cast[0].precision, 18);
    struct velo_datatype at[2] = {cast[0], a[1]};
    struct velo_datatype rt = f->ret_type(at, 2);
    CU_ASSERT_EQUAL(rt.id, VELO_TYPE_DECIMAL);
    CU_ASSERT_EQUAL(rt.scale, 3);
    /* Unknown names and bad arities are told apart. */
    CU_ASSERT_PTR_NULL(velo_funcs_resolve(funcs, "NO_SUCH", a, 2, cast,
                                          &known));
    CU_ASSERT_EQUAL(known, 0);
    CU_ASSERT_PTR_NULL(velo_funcs_resolve(funcs, "UPPER", a, 2, cast,
                                          &known));
    CU_ASSERT_EQUAL(known, 1);
    /* Names for hints, overloads, aggregates. */
    const char *names[512];
    size_t nn = velo_funcs_names(funcs, names, 512);
    int saw_upper = 0, saw_sum = 0;
    for (size_t i = 0; i < nn && i < 512; i++) {
        saw_upper |= strcmp(names[i], "UPPER") == 0;
        saw_sum |= strcmp(names[i], "SUM") == 0;
        CU_ASSERT(names[i][0] != '+');
    }
    CU_ASSERT(saw_upper && saw_sum);
    const struct velo_func *ov[16];
    CU_ASSERT(velo_funcs_overloads(funcs, "ROUND", ov, 16) >= 4);
    CU_ASSERT(velo_funcs_is_agg(funcs, "count"));
    CU_ASSERT(!velo_funcs_is_agg(funcs, "UPPER"));
    a[0] = velo_type_of(VELO_TYPE_INTEGER);
    const struct velo_agg *ag =
        velo_funcs_resolve_agg(funcs, "SUM", a, 1, cast, &known);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ag);
    CU_ASSERT_EQUAL(ag->ret.id, VELO_TYPE_BIGINT);
    a[0] = velo_type_decimal(10, 2);
    ag = velo_funcs_resolve_agg(funcs, "AVG", a, 1, cast, &known);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ag);
    rt = ag->ret_type(a, 1);
    CU_ASSERT_EQUAL(rt.scale, 6);
    /* A clash is refused. */
    struct velo_datatype st = velo_type_of(VELO_TYPE_STRING);
    struct velo_func dup =
        *velo_funcs_resolve(funcs, "UPPER", &st, 1, cast, &known);
    CU_ASSERT_EQUAL(velo_funcs_add(funcs, &dup), VELO_ERR);
}

/* A plugin's row-at-a-time function through the adapter. */
static int plug_twice(const struct velo_value *args, size_t nargs,
                      struct velo_value *out)
{
    if (args[0].type == VELO_TYPE_NULL) {
        out->type = VELO_TYPE_NULL;
        return VELO_OK;
    }
    if (args[0].type != VELO_TYPE_BIGINT && args[0].type != VELO_TYPE_INTEGER) {
        return VELO_ERR;
    }
    if (args[0].v.i64 == 13) {
        return VELO_ERR;
    }
    out->type = VELO_TYPE_BIGINT;
    out->v.i64 = args[0].v.i64 * 2 + (int64_t)nargs - 1;
    return VELO_OK;
}

static int plug_greet(const struct velo_value *args, size_t nargs,
                      struct velo_value *out)
{
    static char buf[64]; /* reused: the host must copy */
    int n = snprintf(buf, sizeof(buf), "hi %.*s", (int)args[0].v.str.len,
                     args[0].v.str.ptr);
    out->type = VELO_TYPE_STRING;
    out->v.str.ptr = buf;
    out->v.str.len = (size_t)n;
    return VELO_OK;
}

static void test_plugin_functions(void)
{
    static const struct velo_app_sql_function twice = {
        "twice", VELO_TYPE_BIGINT, 1, 2, plug_twice};
    static const struct velo_app_sql_function greet = {
        "GREET", VELO_TYPE_STRING, 1, 1, plug_greet};
    CU_ASSERT_EQUAL(velo_funcs_add_plugin(funcs, &twice), VELO_OK);
    CU_ASSERT_EQUAL(velo_funcs_add_plugin(funcs, &greet), VELO_OK);
    static const struct xcase cases[] = {
        {"(TWICE 21)", "42"},
        {"(TWICE 21 'x')", "43"},
        {"(TWICE NULL)", "NULL"},
        {"(TWICE 13)", "ERR4: function TWICE failed"},
        {"(TWICE 'a')", "ERR4"},
        {"(GREET 'bo')", "hi bo"},
    };
    RUN(cases);
}

static void test_fold_and_format(void)
{
    struct velo_literal lit;
    char msg[256];
    struct velo_expr *e = xparse(funcs, NULL, "(|| (UPPER 'ab') 'c')");
    CU_ASSERT_EQUAL(velo_expr_fold(e, &lit, msg, sizeof(msg)), VELO_OK);
    CU_ASSERT_STRING_EQUAL(lit.str, "ABc");
    CU_ASSERT_EQUAL(lit.len, 3);
    free(lit.str);
    velo_expr_free(e);
    e = xparse(funcs, NULL, "(/ 1 0)");
    CU_ASSERT_EQUAL(velo_expr_fold(e, &lit, msg, sizeof(msg)), VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "division by zero"));
    velo_expr_free(e);
    e = xparse(funcs, NULL, "(NOW)");
    CU_ASSERT_EQUAL(velo_expr_fold(e, &lit, msg, sizeof(msg)), VELO_DECLINED);
    velo_expr_free(e);

    struct velo_schema *s =
        xschema("price:BIGINT;name:STRING;weird col:BIGINT");
    e = xparse(funcs, s,
               "(AND (> (* $0 0.908) 10) (LIKE $1 'a%') (IN $2 1 2) "
               "(ISNOTNULL (CAST $1 BIGINT)))");
    char buf[512];
    size_t n = velo_expr_format(e, s, buf, sizeof(buf));
    CU_ASSERT_EQUAL(n, strlen(buf));
    CU_ASSERT_STRING_EQUAL(
        buf, "(((CAST(price AS DECIMAL(18,0)) * 0.908) > CAST(10 AS "
             "BIGINT)) AND (name LIKE 'a%') AND (\"weird col\" IN (1, "
             "2)) AND (CAST(name AS BIGINT) IS NOT NULL))");
    /* Truncation still reports the full length. */
    char small[8];
    CU_ASSERT_EQUAL(velo_expr_format(e, s, small, sizeof(small)), n);
    CU_ASSERT_EQUAL(strlen(small), 7);
    struct velo_expr *c = velo_expr_clone(e);
    char buf2[512];
    velo_expr_format(c, s, buf2, sizeof(buf2));
    CU_ASSERT_STRING_EQUAL(buf, buf2);
    velo_expr_free(c);
    velo_expr_free(e);
    velo_schema_destroy(s);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    funcs = velo_funcs_create();
    if (funcs == NULL) {
        fprintf(stderr, "velo_funcs_create failed\n");
        return 1;
    }
    CU_pSuite s = CU_add_suite("functions", NULL, NULL);
    CU_add_test(s, "arithmetic and overflow", test_arithmetic);
    CU_add_test(s, "time arithmetic", test_time_arithmetic);
    CU_add_test(s, "comparisons and NULLIF", test_comparisons);
    CU_add_test(s, "three-valued logic and IN", test_three_valued_logic);
    CU_add_test(s, "lazy CASE, COALESCE, AND, OR", test_lazy_evaluation);
    CU_add_test(s, "LIKE and ILIKE", test_like);
    CU_add_test(s, "string functions", test_strings);
    CU_add_test(s, "regular expressions", test_regex);
    CU_add_test(s, "math functions", test_math);
    CU_add_test(s, "time functions", test_time);
    CU_add_test(s, "JSON functions and field access", test_json);
    CU_add_test(s, "casts", test_casts);
    CU_add_test(s, "cast matrix", test_cast_matrix);
    CU_add_test(s, "columns, NULLs, selections", test_columns_and_selection);
    CU_add_test(s, "overload resolution", test_resolution);
    CU_add_test(s, "plugin functions", test_plugin_functions);
    CU_add_test(s, "folding and text form", test_fold_and_format);
    int rc = tu_run_all();
    velo_funcs_destroy(funcs);
    return rc;
}
