-- One clean row per labelled book: the input of the training files.

-- name: clean_text_macros
-- Plain text from Goodreads HTML. Order matters: tags are removed before entities are decoded
-- (an encoded "&lt;i&gt;" is text, not a tag), and "&amp;" is decoded last so that "&amp;lt;"
-- becomes the literal "&lt;".
CREATE OR REPLACE TEMP MACRO decode_codepoint(n) AS (
    CASE WHEN n BETWEEN 1 AND 1114111 AND NOT n BETWEEN 55296 AND 57343 THEN chr(n) END
);
CREATE OR REPLACE TEMP MACRO decode_numeric_entities(s) AS (
    CASE WHEN s LIKE '%&#%' THEN array_to_string(list_transform(string_split(s, '&#'),
        lambda piece, i: CASE
            WHEN i = 1 THEN piece
            WHEN regexp_matches(piece, '^[0-9]{1,7};')
                 AND decode_codepoint(CAST(regexp_extract(piece, '^([0-9]{1,7});', 1) AS INTEGER))
                     IS NOT NULL
                THEN decode_codepoint(CAST(regexp_extract(piece, '^([0-9]{1,7});', 1) AS INTEGER))
                     || regexp_replace(piece, '^[0-9]{1,7};', '')
            WHEN regexp_matches(piece, '^[xX][0-9a-fA-F]{1,6};')
                 AND decode_codepoint(CAST('0x' || regexp_extract(piece, '^[xX]([0-9a-fA-F]{1,6});', 1) AS INTEGER))
                     IS NOT NULL
                THEN decode_codepoint(CAST('0x' || regexp_extract(piece, '^[xX]([0-9a-fA-F]{1,6});', 1) AS INTEGER))
                     || regexp_replace(piece, '^[xX][0-9a-fA-F]{1,6};', '')
            ELSE '&#' || piece
        END), '')
    ELSE s END
);
CREATE OR REPLACE TEMP MACRO decode_named_entities(s) AS (
    CASE WHEN s LIKE '%&%;%' THEN
        replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
        replace(replace(replace(s,
            '&lt;', '<'), '&gt;', '>'), '&quot;', '"'), '&apos;', ''''), '&nbsp;', ' '),
            '&mdash;', '—'), '&ndash;', '–'), '&hellip;', '…'), '&rsquo;', '’'),
            '&lsquo;', '‘'), '&ldquo;', '“'), '&rdquo;', '”'), '&amp;', '&')
    ELSE s END
);
CREATE OR REPLACE TEMP MACRO strip_tags(s) AS (
    CASE WHEN s LIKE '%<%' THEN regexp_replace(
        regexp_replace(s, '<\s*/?\s*(br|p|div|li|ul|ol|h[1-6]|blockquote|tr|hr)\b[^>]*>', ' ', 'gi'),
        '</?[a-zA-Z][^>]*>', '', 'g')
    ELSE s END
);
-- Whitespace collapse rewrites only runs of 2+ or non-space whitespace (same result as
-- replacing every run, measured 4x faster: most matches of '\s+' are single spaces).
CREATE OR REPLACE TEMP MACRO clean_text(s) AS (
    trim(regexp_replace(
        decode_named_entities(decode_numeric_entities(strip_tags(s))),
        '[\s\x{00A0}\x{2000}-\x{200B}\x{2028}\x{2029}\x{3000}]{2,}|[\t\n\r\f\v\x{00A0}\x{2000}-\x{200B}\x{2028}\x{2029}\x{3000}]',
        ' ', 'g'))
);

-- name: candidates
-- One candidate row per canonical book (temp view canonical_book_rows, graphic_novels.sql),
-- with the reason it is dropped (NULL = kept). The first author is the first one with an empty
-- role (the writer; others are illustrators, translators, ...), else the first listed. Unknown
-- author ids and books without authors are KEPT with a placeholder author name
-- (the description and title still carry the signal).
CREATE OR REPLACE TEMP TABLE enriched_candidates AS
WITH prepared AS MATERIALIZED (
    SELECT
        book_id,
        clean_text(title) AS title,
        coalesce(
            list_filter(authors, lambda a: coalesce(trim(a.role), '') = '')[1],
            authors[1]
        ).author_id AS author_id,
        clean_text(description) AS description
    FROM graphic_novels WHERE rowid IN (SELECT row_id FROM canonical_book_rows)
),
author_names AS (
    -- Only the authors books refer to are cleaned (the authors file is ~10x the books file).
    SELECT author_id, nullif(clean_text(min(name)), '') AS name
    FROM authors
    WHERE author_id IN (SELECT author_id FROM prepared) AND nullif(trim(name), '') IS NOT NULL
    GROUP BY author_id
)
SELECT
    p.book_id,
    p.title,
    coalesce(a.name, $unknown_author) AS author,
    a.name IS NULL AS unknown_author,
    length(p.description) > $max_description_chars AS truncated,
    rtrim(left(p.description, $max_description_chars)) AS description,
    bc.category,
    CASE
        WHEN coalesce(length(p.description), 0) < $min_description_chars THEN 'no_description'
        WHEN bc.category IS NULL THEN 'no_category'
        WHEN coalesce(p.title, '') = '' THEN 'no_title'
    END AS drop_reason
FROM prepared AS p
LEFT JOIN author_names AS a ON a.author_id = p.author_id
LEFT JOIN book_category AS bc ON bc.book_id = p.book_id;

-- name: enriched
CREATE OR REPLACE TABLE enriched_graphic_novels AS
SELECT book_id, title, author, description, category
FROM enriched_candidates
WHERE drop_reason IS NULL
ORDER BY book_id;

-- name: counts
-- candidates, kept, kept with the placeholder author, kept with a cut description
SELECT count(*),
       count(*) FILTER (drop_reason IS NULL),
       count(*) FILTER (drop_reason IS NULL AND unknown_author),
       count(*) FILTER (drop_reason IS NULL AND truncated)
FROM enriched_candidates;

-- name: dropped
SELECT drop_reason, count(*) FROM enriched_candidates
WHERE drop_reason IS NOT NULL GROUP BY drop_reason;

-- name: distribution
-- Books per configured category (zeros included), in configured order.
SELECT c.category, count(t.book_id) AS books
FROM categories AS c LEFT JOIN enriched_graphic_novels AS t ON t.category = c.category
GROUP BY c.category, c.position ORDER BY c.position;

-- name: drop_candidates
DROP TABLE enriched_candidates;
