defmodule PyBridge.Parity.Difference do
  @moduledoc """
  One difference between two servings' outputs, found by `PyBridge.Parity`.

    * `:path` - where it is: list indices and map keys from the top of the
      output, e.g. `[0, :predictions, 1, :label]`.
    * `:field` - the last map key on the path (`:label`), `nil` at the top.
    * `:kind` - what differs:
      * `:structure` - different kinds of value (a map and a list...)
      * `:keys` - maps with different keys (`left`: keys only on the left,
        `right`: keys only on the right)
      * `:length` - lists of different lengths
      * `:order` - the same labels in another order
      * `:label` - a `:label` or `:token` string
      * `:text` - any other string (`:text`, `:phrase`...)
      * `:offset` - a `:start` or `:end` integer
      * `:number` - a number beyond the tolerance, or unequal integers
      * `:shape`, `:type` - tensors of another shape or type
      * `:tensor` - tensor elements beyond the tolerance
      * `:value` - any other unequal value (atoms...)
      * `:raised` - one serving raised or exited, or both did differently
    * `:left`, `:right` - the two values (for `:tensor`, the worst element).
    * `:detail` - a sentence saying more, or `nil`.
  """

  @enforce_keys [:path, :kind]
  defstruct [:path, :kind, :field, :left, :right, :detail]

  @type kind ::
          :structure
          | :keys
          | :length
          | :order
          | :label
          | :text
          | :offset
          | :number
          | :shape
          | :type
          | :tensor
          | :value
          | :raised

  @type t :: %__MODULE__{
          path: [term()],
          kind: kind(),
          field: atom() | nil,
          left: term(),
          right: term(),
          detail: String.t() | nil
        }

  @kinds [
    :structure,
    :keys,
    :length,
    :order,
    :label,
    :text,
    :offset,
    :number,
    :shape,
    :type,
    :tensor,
    :value,
    :raised
  ]

  @doc "Every kind of difference."
  @spec kinds() :: [kind()]
  def kinds, do: @kinds

  @doc false
  @spec new([term()], kind(), term(), term(), String.t() | nil) :: t()
  def new(path, kind, left, right, detail \\ nil) do
    %__MODULE__{
      path: path,
      kind: kind,
      field: path |> Enum.reverse() |> Enum.find(&is_atom/1),
      left: left,
      right: right,
      detail: detail
    }
  end

  @doc "The difference as one line of text."
  @spec format(t()) :: String.t()
  def format(%__MODULE__{} = difference) do
    values =
      case difference.kind do
        :keys ->
          "only in left: #{inspect(difference.left)}, only in right: #{inspect(difference.right)}"

        _other ->
          "#{short(difference.left)} != #{short(difference.right)}"
      end

    detail = if difference.detail, do: " (#{difference.detail})", else: ""
    "#{inspect(difference.path)} #{difference.kind}: #{values}#{detail}"
  end

  defp short(value), do: inspect(value, limit: 8, printable_limit: 80)
end
