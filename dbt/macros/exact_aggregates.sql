{#- Order-independent averages and standard deviations.
    DuckDB sums doubles in whatever order its threads meet the rows, so avg() and stddev_samp() can differ in
    the last bits between two runs over the same rows, and a re-run partition would not be identical. Summing
    exact decimals (values rounded to 1e-9 first) gives the same answer for any order. -#}
{% macro exact_avg(expression) -%}
  (sum(({{ expression }})::decimal(18, 9)) / nullif(count({{ expression }}), 0))::double
{%- endmacro %}

{% macro exact_stddev_samp(expression) -%}
  case when count({{ expression }}) > 1 then sqrt(greatest(0, ((
      sum(({{ expression }})::decimal(18, 9) * ({{ expression }})::decimal(18, 9))
      - sum(({{ expression }})::decimal(18, 9)) * sum(({{ expression }})::decimal(18, 9)) / count({{ expression }})
    ) / (count({{ expression }}) - 1))::double)) end
{%- endmacro %}
