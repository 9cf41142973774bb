from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0010_recognition')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Workspace',
            name='owner',
            field=fields.ForeignKeyField('models.User', source_field='owner_id', null=True, db_constraint=True, to_field='id', related_name='owned_workspaces', on_delete=OnDelete.SET_NULL),
        ),
    ]
