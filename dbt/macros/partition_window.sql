{#- The partition window every model builds: vars min_date and max_date, inclusive, 'YYYY-MM-DD'.
    While dbt only parses the project (execute is false, e.g. `dbt parse` for Dagster's manifest) no window is
    needed, so a placeholder stands in; at run time a missing, malformed or empty window stops the run. -#}

{% macro window_date(var_name) %}
  {%- if not execute -%}
    {{ return('1970-01-01') }}
  {%- endif -%}
  {%- set usage = "pass the partition window as --vars '{min_date: YYYY-MM-DD, max_date: YYYY-MM-DD}' (both inclusive)" -%}
  {%- set raw = var(var_name, none) -%}
  {%- if raw is none or (raw | string | trim) == '' -%}
    {{ exceptions.raise_compiler_error("dbt var '" ~ var_name ~ "' is not set: " ~ usage) }}
  {%- endif -%}
  {#- YAML turns an unquoted 2024-03-01 into a date; its string form is the ISO date again. -#}
  {%- set value = raw | string | trim -%}
  {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', value) -%}
    {{ exceptions.raise_compiler_error("dbt var " ~ var_name ~ "=" ~ value ~ " is not a date: " ~ usage) }}
  {%- endif -%}
  {{ return(value) }}
{% endmacro %}

{% macro window_start() %}
  {{ return("date '" ~ window_date('min_date') ~ "'") }}
{% endmacro %}

{% macro window_end() %}
  {%- set min_date = window_date('min_date') -%}
  {%- set max_date = window_date('max_date') -%}
  {#- ISO dates order as strings. -#}
  {%- if max_date < min_date -%}
    {{ exceptions.raise_compiler_error("dbt vars min_date=" ~ min_date ~ " and max_date=" ~ max_date ~ " are an empty window: max_date must be on or after min_date") }}
  {%- endif -%}
  {{ return("date '" ~ max_date ~ "'") }}
{% endmacro %}

{#- A SQL predicate keeping only rows whose event_date lies in the window. -#}
{% macro in_window(column='event_date') %}
  {{- column }} between {{ window_start() }} and {{ window_end() -}}
{% endmacro %}
