defmodule PyBridge.Parity.Report do
  @moduledoc """
  What `PyBridge.Parity` found when comparing two servings' outputs.

    * `:equal?` - `true` when there is no difference beyond the tolerances.
    * `:differences` - every `PyBridge.Parity.Difference`, in the order of
      the outputs (item by item, map keys sorted).
    * `:max_abs_diff` - the largest `|left - right|` over every float and
      tensor element compared, within the tolerance or not, and
      `:max_diff_path` where it is.
    * `:numbers_compared` - how many floats and tensor elements were compared.
    * `:atol`, `:rtol` - the tolerances: two numbers are equal when
      `|left - right| <= atol + rtol * |right|`.
  """

  alias PyBridge.Parity.Difference

  defstruct equal?: true,
            differences: [],
            max_abs_diff: 0.0,
            max_diff_path: nil,
            numbers_compared: 0,
            atol: nil,
            rtol: nil

  @type t :: %__MODULE__{
          equal?: boolean(),
          differences: [Difference.t()],
          max_abs_diff: float(),
          max_diff_path: [term()] | nil,
          numbers_compared: non_neg_integer(),
          atol: float(),
          rtol: float()
        }

  @shown 20

  @doc "The first difference, or `nil` when there is none."
  @spec first_difference(t()) :: Difference.t() | nil
  def first_difference(%__MODULE__{differences: differences}), do: List.first(differences)

  @doc """
  The report as text: a summary line, then one line per difference (the
  first #{@shown}).
  """
  @spec format(t()) :: String.t()
  def format(%__MODULE__{} = report) do
    tolerance = "atol #{report.atol}, rtol #{report.rtol}"

    largest =
      if report.max_diff_path,
        do: "largest |left - right| #{report.max_abs_diff} at #{inspect(report.max_diff_path)}",
        else: "no floats compared"

    if report.equal? do
      "outputs are equal within #{tolerance}; #{report.numbers_compared} numbers compared, #{largest}"
    else
      count = length(report.differences)
      first = first_difference(report)

      lines =
        report.differences
        |> Enum.take(@shown)
        |> Enum.map(&("  " <> Difference.format(&1)))

      more = if count > @shown, do: ["  ... and #{count - @shown} more"], else: []

      Enum.join(
        [
          "outputs differ: #{count} difference(s) (#{tolerance}; #{largest})",
          "first difference: #{inspect(first.field)} at #{inspect(first.path)}" | lines
        ] ++ more,
        "\n"
      )
    end
  end
end
