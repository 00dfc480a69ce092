-- The support tickets table of the support_tickets task, from the JSON-lines ticket file.

-- name: load_tickets
-- Every readable ticket with an id; a ticket id seen twice keeps its first line. Written in one
-- statement, so a failed load leaves the previous table.
CREATE OR REPLACE TABLE tickets AS
SELECT ticket_id, created_at, channel, customer_tier, subject, body, department
FROM read_json($path, format = 'newline_delimited', ignore_errors = true, columns = {
    ticket_id: 'VARCHAR', created_at: 'TIMESTAMP', channel: 'VARCHAR', customer_tier: 'VARCHAR',
    subject: 'VARCHAR', body: 'VARCHAR', department: 'VARCHAR'
})
WHERE ticket_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY ticket_id ORDER BY created_at NULLS LAST) = 1;

-- name: departments
-- Tickets per department, for the asset's metadata.
SELECT coalesce(department, '(none)'), count(*) FROM tickets GROUP BY ALL ORDER BY 2 DESC, 1;
